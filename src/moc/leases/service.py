"""The lease service: the async owner of the lease table.

It runs every decision of :class:`~moc.leases.table.LeaseTable` as
decide → persist → apply, with no ``await`` in between, so admission is
atomic and a failed write changes nothing. Grants that revoke nothing and
renews are *staged* instead (group commit, :mod:`moc.store.group_commit`):
decide → stage → apply, then the answer waits for the commit, and a commit
that fails undoes them (a grant frees its memory, a renew gets its old
deadline). It owns the futures of waiting requests, the expiry sweeper, and
what is known of each lease holder's measured use (:mod:`moc.leases.usage`).

It is one file of about 570 lines because every method is a step of the one
owner of the table: each decides, writes and applies with no ``await`` in
between, and split across files those steps would have to share the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import replace

from moc.clock import Clock
from moc.config import LeasesConfig
from moc.errors import InsufficientMemory, QueueFull, ShuttingDown, StoreUnavailable
from moc.fanout import Fanout
from moc.leases.model import EndState, Lease, LeaseRequest
from moc.leases.store import LeaseStore
from moc.leases.table import Blocked, Grant, LeaseTable
from moc.leases.usage import LeaseUsage
from moc.ledger import Claim, Ledger
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics
from moc.units import format_size

log = logging.getLogger(__name__)

LeaseEvent = dict[
    str, object
]  # {"event": "yield", "yield_by", "reason"} | {"event": "ended", "state"}

# Asked before a lease with an owner is granted or renewed: (owner, bytes,
# ttl_s, the lease being renewed or ""); raises to refuse.
Admit = Callable[[str, int, float, str], None]

HOUSEKEEPING_EVERY_S = 60.0
MAX_ENDED_REMEMBERED = 100_000


def new_lease_id() -> str:
    """64 random bits: unguessable, so the id can serve as the holder's handle,
    and short enough to read and paste."""
    return secrets.token_hex(8)


class LeaseService:
    def __init__(
        self,
        ledger: Ledger,
        store: LeaseStore,
        clock: Clock,
        metrics: Metrics,
        config: LeasesConfig,
    ) -> None:
        self._table = LeaseTable(ledger)
        self._ledger = ledger
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._config = config
        self._futures: dict[int, asyncio.Future[Lease]] = {}
        self._seq = itertools.count(1)
        self._wake = asyncio.Event()
        self._closing = False
        self._usage = LeaseUsage(metrics)
        self._sweeper: asyncio.Task[None] | None = None
        self._watchers: Fanout[str, LeaseEvent] = Fanout()
        self._on_freed: list[Callable[[], None]] = []
        self._hold_keys = itertools.count(1)
        self._admit: Admit | None = None
        self.id_prefix = ""  # in a cluster, "<node>.": any node can tell whose a lease is
        self._on_ended: list[Callable[[Lease], None]] = []

    # --- lifecycle -----------------------------------------------------------
    def restore(self) -> tuple[int, int]:
        """Load persisted leases; those past their TTL expire now. Returns
        (live, expired while moc was down)."""
        active, ended, tokens = self._store.load()
        known = [lease for lease in active if self._ledger.has_device(lease.device)]
        for lease in active:
            if not self._ledger.has_device(lease.device):
                event(
                    log,
                    logging.WARNING,
                    "lease dropped: its device is gone",
                    lease=lease.id,
                    device=lease.device,
                    holder=lease.holder,
                )
        dropped = [lease.id for lease in active if not self._ledger.has_device(lease.device)]
        now = self._clock.now()
        if dropped:
            self._store.save_end(dropped, EndState.EXPIRED, now)
        self._table.restore(known, ended, tokens)
        expired = self._expire_due(now)
        return len(self._table.active()), expired + len(dropped)

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="lease-sweeper")

    async def close(self) -> int:
        """Stop granting; fail waiting requests. Leases stay persisted as they are.
        Returns the number of waiting requests that were turned away."""
        self._closing = True
        turned_away = 0
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(ShuttingDown("moc is shutting down; retry against it later"))
                turned_away += 1
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        return turned_away

    # --- queries -------------------------------------------------------------
    def get(self, lease_id: str) -> Lease:
        return self._table.check_held(lease_id, None, self._clock.now())

    def live(
        self, device: str | None = None, holder: str | None = None, owner: str | None = None
    ) -> list[Lease]:
        return [
            lease
            for lease in self._table.active()
            if (device is None or lease.device == device)
            and (holder is None or lease.holder == holder)
            and (owner is None or lease.owner == owner)
        ]

    def used_bytes(self, lease_id: str) -> int | None:
        return self._usage.used(lease_id)

    def counts_by_device(self) -> dict[str, int]:
        counts = Tally(lease.device for lease in self._table.active())
        return {d: counts.get(d, 0) for d in self._ledger.device_ids()}

    def waiter_count(self) -> int:
        return self._table.waiter_count()

    def claims(self) -> list[Claim]:
        return [
            Claim(lease.id, lease.device, lease.pid, lease.bytes) for lease in self._table.active()
        ]

    def check_could_ever_fit(self, request: LeaseRequest) -> None:
        """Raises ExceedsCapacity for a request no eligible device could hold."""
        self._table.check_could_ever_fit(request)

    # --- acquire -------------------------------------------------------------
    def admit_with(self, admit: Admit) -> None:
        """Ask ``admit`` before granting or renewing a lease that has an owner
        (its device quota); what it raises is the answer."""
        self._admit = admit

    def on_ended(self, callback: Callable[[Lease], None]) -> None:
        """Call ``callback`` with each lease as it ends, however it ends."""
        self._on_ended.append(callback)

    async def acquire(self, request: LeaseRequest) -> Lease:
        if self._closing:
            raise ShuttingDown("moc is shutting down; retry against it later")
        if self._admit is not None and request.owner:
            self._admit(request.owner, request.bytes, request.ttl_s, "")
        now = self._clock.now()
        try:
            decision = self._table.decide_acquire(request, self.id_prefix + new_lease_id(), now)
        except InsufficientMemory as exc:
            self._metrics.lease_denials.labels(exc.code).inc()
            raise
        if isinstance(decision, Grant):
            if decision.revoked:  # undoing a revocation is not safe: committed at once
                self._commit_grant(decision, now)
            else:
                await self._staged_grant(decision, now)
            return decision.lease
        if request.wait_s <= 0:
            raise self._deny(request, decision)
        # A waiter is first in line on its devices, so what a yielding lease of
        # lower priority lets go of comes to it.
        if reclaim := self._table.to_reclaim(request):
            self.request_yield([x.id for x in reclaim], f"a lease of priority {request.priority}")
        if self._table.waiter_count() >= self._config.max_waiters:
            self._metrics.lease_denials.labels("queue_full").inc()
            raise QueueFull(
                f"{self._table.waiter_count()} lease requests are already waiting "
                f"(leases.max_waiters = {self._config.max_waiters})",
                retry_after_s=decision.retry_after_s,
            )
        return await self._wait(request, now)

    def _deny(self, request: LeaseRequest, blocked: Blocked, waited_s: float = 0.0) -> Exception:
        self._metrics.lease_denials.labels("insufficient_memory").inc()
        where = request.device or "any device"
        waited = f" after waiting {waited_s:.1f}s" if waited_s else ""
        return InsufficientMemory(
            f"requested {format_size(request.bytes)} on {where} but at most "
            f"{format_size(max(0, blocked.free))} is free{waited}",
            retry_after_s=blocked.retry_after_s,
            requested_bytes=request.bytes,
            free_bytes=max(0, blocked.free),
        )

    async def _wait(self, request: LeaseRequest, since: float) -> Lease:
        seq = next(self._seq)
        fut: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        self._futures[seq] = fut
        self._table.enqueue(seq, request, since)
        outcome = "cancelled"
        try:
            async with asyncio.timeout(request.wait_s):
                lease = await fut
            outcome = "granted"
            return lease
        except TimeoutError:
            # One last look at the deadline: it may fit now that this request
            # no longer queues behind itself.
            self._table.drop_waiter(seq)
            now = self._clock.now()
            decision = self._table.decide_acquire(request, self.id_prefix + new_lease_id(), now)
            if isinstance(decision, Grant):
                self._commit_grant(decision, now)
                outcome = "granted"
                return decision.lease
            outcome = "timeout"
            raise self._deny(request, decision, now - since) from None
        except asyncio.CancelledError:
            # The client went away. If the grant raced the cancellation, give
            # the memory back: nobody will ever release it otherwise.
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release_unclaimed(fut.result())
            raise
        finally:
            self._table.drop_waiter(seq)
            self._futures.pop(seq, None)
            self._metrics.lease_wait_seconds.labels(outcome).observe(self._clock.now() - since)
            if outcome != "granted":
                self._grant_waiters()  # a dropped waiter may have been blocking others

    def _grant_waiters(self) -> None:
        for listener in self._on_freed:
            listener()
        if self._closing:
            return
        for seq, fut in list(self._futures.items()):
            if fut.done():
                self._table.drop_waiter(seq)
        now = self._clock.now()
        while (found := self._table.next_waiter_grant(new_lease_id(), now)) is not None:
            waiter, grant = found
            fut = self._futures[waiter.seq]
            self._table.drop_waiter(waiter.seq)
            try:
                self._commit_grant(grant, now)
            except StoreUnavailable as exc:
                fut.set_exception(exc)
                continue
            fut.set_result(grant.lease)

    async def _staged_grant(self, grant: Grant, now: float) -> None:
        """Apply the grant now and answer once its batch is committed; taken back
        if the batch is not (see moc.store.group_commit)."""

        def undo() -> None:
            self._table.undo_grant(grant.lease)
            # Later, not now: this runs inside a commit that a write of
            # someone else's may be waiting on, decided before the undo.
            asyncio.get_running_loop().call_soon(self._grant_waiters)

        committed = self._store.stage_grant(grant.lease, undo)
        self._applied_grant(grant, now)
        try:
            await asyncio.shield(committed)
        except asyncio.CancelledError:
            # The client went away before the commit: once it is stored, give
            # the memory back, since nobody will ever release it otherwise.
            committed.add_done_callback(lambda _: self._release_unclaimed(grant.lease))
            raise

    def _release_unclaimed(self, lease: Lease) -> None:
        if self._table.get(lease.id) != lease:
            return  # undone (its commit failed), or already ended
        try:
            self._end([lease], EndState.RELEASED)
        except StoreUnavailable as exc:
            event(log, logging.WARNING, "lease left to expire", lease=lease.id, error=str(exc))

    def _commit_grant(self, grant: Grant, now: float) -> None:
        self._store.save_grant(grant.lease, grant.revoked, now)
        self._applied_grant(grant, now)

    def _applied_grant(self, grant: Grant, now: float) -> None:
        self._table.apply_grant(grant, now)
        lease = grant.lease
        self._metrics.lease_grants.labels(lease.device).inc()
        for victim in grant.revoked:
            self._ended(victim, EndState.REVOKED)
            self._metrics.lease_revocations.labels(victim.device).inc()
            event(
                log,
                logging.INFO,
                "lease revoked",
                lease=victim.id,
                holder=victim.holder,
                device=victim.device,
                bytes=victim.bytes,
                priority=victim.priority,
                for_lease=lease.id,
                for_priority=lease.priority,
            )
        event(
            log,
            logging.DEBUG,
            "lease granted",
            lease=lease.id,
            holder=lease.holder,
            device=lease.device,
            bytes=lease.bytes,
            ttl_s=lease.ttl_s,
            fencing_token=lease.fencing_token,
        )
        self._wake.set()

    # --- renew, release, expire ----------------------------------------------
    async def renew(self, lease_id: str, ttl_s: float | None, fencing_token: int | None) -> Lease:
        """The lease with a new deadline, answered once that is committed (in
        the tick's batch); the old deadline is back if the batch is not."""
        now = self._clock.now()
        try:
            lease = self._table.check_held(lease_id, fencing_token, now)
        finally:
            self._expire_due(now)  # a lease found past its TTL is reclaimed now
        ttl = ttl_s if ttl_s is not None else lease.ttl_s
        if self._admit is not None and lease.owner:
            self._admit(lease.owner, lease.bytes, ttl, lease.id)
        renewed = self._table.renewed(lease, ttl, now)

        def undo() -> None:
            if self._table.get(lease.id) == renewed:
                self._table.apply_renew(lease)
                self._wake.set()

        committed = self._store.stage_renew(renewed, undo)
        self._table.apply_renew(renewed)
        await asyncio.shield(committed)  # a renewer gone away cancels no one's commit
        return renewed

    def release(self, lease_id: str, fencing_token: int | None) -> Lease:
        now = self._clock.now()
        try:
            lease = self._table.check_held(lease_id, fencing_token, now)
        finally:
            self._expire_due(now)
        self._end([lease], EndState.RELEASED)
        return lease

    def _end(self, leases: list[Lease], state: EndState) -> None:
        now = self._clock.now()
        self._store.save_end([lease.id for lease in leases], state, now)
        for lease in leases:
            self._table.apply_end(lease.id, state, now)
            self._ended(lease, state)
            if state is EndState.RELEASED:
                self._metrics.lease_releases.labels(lease.device).inc()
                event(
                    log,
                    logging.DEBUG,
                    "lease released",
                    lease=lease.id,
                    holder=lease.holder,
                    device=lease.device,
                    bytes=lease.bytes,
                )
        self._grant_waiters()

    def _expire_due(self, now: float) -> int:
        due = self._table.take_due(now)
        if not due:
            return 0
        try:
            self._store.save_end([lease.id for lease in due], EndState.EXPIRED, now)
        except StoreUnavailable as exc:
            # Memory is reclaimed regardless: the rows still carry their
            # expires_at, so a restart finds them expired too.
            event(log, logging.ERROR, "could not record lease expiry", error=str(exc))
        for lease in due:
            self._table.apply_end(lease.id, EndState.EXPIRED, now)
            self._ended(lease, EndState.EXPIRED)
            self._metrics.lease_expiries.labels(lease.device).inc()
            event(
                log,
                logging.INFO,
                "lease expired",
                lease=lease.id,
                holder=lease.holder,
                device=lease.device,
                bytes=lease.bytes,
                late_s=round(now - lease.expires_at, 3),
            )
        self._grant_waiters()
        return len(due)

    async def _sweep(self) -> None:
        next_housekeeping = self._clock.now() + HOUSEKEEPING_EVERY_S
        while True:
            now = self._clock.now()
            self._expire_due(now)
            self._revoke_unyielded(now)
            if now >= next_housekeeping:
                self._forget_old(now)
                next_housekeeping = now + HOUSEKEEPING_EVERY_S
            due = [t for t in (self._table.next_expiry(), self._table.next_yield_deadline()) if t]
            nxt = min(due, default=None)
            timeout = 1.0 if nxt is None else min(1.0, max(0.0, nxt - self._clock.now()))
            self._wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _forget_old(self, now: float) -> None:
        gone = self._table.forget_ended(now - self._config.tombstone_s, MAX_ENDED_REMEMBERED)
        if gone:
            try:
                self._store.forget(gone)
            except StoreUnavailable as exc:
                event(log, logging.WARNING, "could not prune ended leases", error=str(exc))

    # --- yielding --------------------------------------------------------------
    def on_freed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever leases may have given memory back."""
        self._on_freed.append(listener)

    @contextlib.contextmanager
    def hold_back(self, device: str, priority: int) -> Iterator[None]:
        """While inside, nobody below ``priority`` is granted memory on ``device``:
        what a yielding lease frees stays for the reclaim that asked for it."""
        key = next(self._hold_keys)
        self._table.hold(key, device, priority)
        try:
            yield
        finally:
            self._table.unhold(key)
            self._grant_waiters()

    def yieldable(self, devices: list[str], below: int) -> list[Lease]:
        return self._table.yieldable(devices, below)

    def request_yield(self, lease_ids: list[str], reason: str) -> float:
        """Ask these leases' holders to let go; returns the seconds until the
        last of their deadlines (a lease asked before keeps its deadline)."""
        now = self._clock.now()
        latest = now
        for lease_id in lease_ids:
            lease = self._table.get(lease_id)
            if lease is None:
                continue
            asked = self._table.asked_to_yield(lease, now)
            if asked is None:
                latest = max(latest, lease.yield_by or now)
                continue
            self._table.apply_update(asked)
            assert asked.yield_by is not None
            latest = max(latest, asked.yield_by)
            self._metrics.lease_yield_requests.labels(lease.device).inc()
            self._publish(
                lease_id, {"event": "yield", "yield_by": asked.yield_by, "reason": reason}
            )
            event(
                log,
                logging.INFO,
                "lease asked to yield",
                lease=lease_id,
                holder=lease.holder,
                device=lease.device,
                bytes=lease.bytes,
                within_s=lease.yield_s,
                reason=reason,
            )
        self._wake.set()
        return latest - now

    def _revoke_unyielded(self, now: float) -> None:
        overdue = self._table.yield_overdue(now)
        if not overdue:
            return
        for lease in overdue:
            event(
                log,
                logging.WARNING,
                "lease revoked: not released in time after a yield request",
                lease=lease.id,
                holder=lease.holder,
                device=lease.device,
                bytes=lease.bytes,
                yield_s=lease.yield_s,
            )
            self._metrics.lease_revocations.labels(lease.device).inc()
        try:
            self._end(overdue, EndState.REVOKED)
        except StoreUnavailable as exc:
            event(log, logging.ERROR, "could not record a lease revocation", error=str(exc))
            for lease in overdue:  # the memory is reclaimed regardless
                self._table.apply_end(lease.id, EndState.REVOKED, now)
                self._ended(lease, EndState.REVOKED)
            self._grant_waiters()

    def watch(self, lease_id: str) -> asyncio.Queue[LeaseEvent]:
        """A queue of the lease's events (a yield request, its end); the lease
        must be live. Stop with :meth:`unwatch`."""
        lease = self.get(lease_id)
        queue = self._watchers.subscribe(lease_id)
        if lease.yield_by is not None:
            queue.put_nowait({"event": "yield", "yield_by": lease.yield_by, "reason": "asked"})
        return queue

    def unwatch(self, lease_id: str, queue: asyncio.Queue[LeaseEvent]) -> None:
        self._watchers.unsubscribe(lease_id, queue)

    def _ended(self, lease: Lease, state: EndState) -> None:
        """What follows every end, however it came: its measured use is
        forgotten, those who asked are told, and its watchers hear how it
        ended, last."""
        self._usage.forget(lease.id)
        for callback in self._on_ended:
            callback(lease)
        self._publish(lease.id, {"event": "ended", "state": state.value}, last=True)

    def _publish(self, lease_id: str, item: LeaseEvent, last: bool = False) -> None:
        self._watchers.publish(lease_id, item, last=last)

    def attach_pid(self, lease_id: str, pid: int | None) -> Lease:
        """Name the process that uses a live lease's memory (its holder started
        it after the grant), so the monitor measures it."""
        lease = replace(self.get(lease_id), pid=pid)
        self._store.save_pid(lease)
        self._table.apply_update(lease)
        return lease

    # --- observed use ----------------------------------------------------------
    def note_usage(self, used_by_lease: dict[str, int]) -> None:
        """What each lease's process was measured using (the device monitor)."""
        for lease_id, used in used_by_lease.items():
            if (lease := self._table.get(lease_id)) is not None:
                self._usage.note(lease, used)

    def over_limit(self, lease_id: str) -> bool:
        return self._usage.over(lease_id)

    def memory_changed(self) -> None:
        """Free memory may have grown outside the table (external use fell, a
        model unloaded): try the waiters again."""
        self._grant_waiters()
