"""The lease table: who holds what, who waits, and every decision about them.

Pure and synchronous: time comes in as ``now`` and ids as arguments, nothing
here sleeps, awaits or writes. Effects follow a decide → persist → apply
pattern in :mod:`moc.leases.service`: ``decide_*`` and ``check_*`` methods
never mutate, so a failed write leaves the table as it was; ``apply_*``
methods mutate and cannot fail.

Ownership: one LeaseTable per daemon, owned by the LeaseService and touched
only on the event-loop thread. No ``await`` may sit between a decision and
its ``apply_*`` (the ledger's free memory could change in between).

Waiting and fairness. A request that does not fit may wait; waiters are
ordered by priority (higher first), then by arrival. A waiter that does not
fit *blocks* the devices it could use: nobody of lower or equal priority may
take memory on them ahead of it, neither a later waiter nor a new arrival.
Without that, a stream of small requests would starve a large one forever.

Preemption. A new request may revoke leases marked ``preemptible`` whose
priority is strictly lower than its own, lowest priority first, then newest
first, on the device where that frees the least memory.

Yielding. A lease acquired with ``yield_s`` is *yieldable*: instead of waiting
for its TTL, whoever needs its memory (a model load, a higher-priority
request) asks its holder to let go within ``yield_s``; a lease not released
by then is revoked. While such a reclaim is under way, a *hold* keeps the
freed bytes for the one who asked: nobody of lower priority may take memory
on that device (the yielded holder's own request to resume included).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace

from moc.errors import (
    DeviceNotFound,
    ExceedsCapacity,
    FencingTokenMismatch,
    LeaseExpired,
    LeaseNotFound,
    LeaseReleased,
    LeaseRevoked,
)
from moc.leases.model import Ended, EndState, Lease, LeaseRequest
from moc.ledger import Entry, EntryKind, Ledger
from moc.units import format_size

MIN_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class Grant:
    lease: Lease
    revoked: tuple[Lease, ...] = ()


@dataclass(frozen=True)
class Blocked:
    """The request does not fit now; it could later."""

    free: int  # the most free memory among the devices it may use
    retry_after_s: float


@dataclass(frozen=True)
class Waiter:
    seq: int
    request: LeaseRequest
    since: float


def _waiter_order(w: Waiter) -> tuple[int, int]:
    return (-w.request.priority, w.seq)


class LeaseTable:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._active: dict[str, Lease] = {}
        self._ended: dict[str, Ended] = {}  # insertion order = end order
        self._tokens: dict[str, int] = {}  # last fencing token handed out per device
        self._waiters: dict[int, Waiter] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._holds: dict[int, tuple[str, int]] = {}  # key → (device, priority)

    # --- state from the store ----------------------------------------------
    def restore(self, active: list[Lease], ended: list[Ended], tokens: dict[str, int]) -> None:
        """Load persisted state at startup. Leases on unknown devices are skipped
        by the caller; ``active`` must all fit the ledger's devices."""
        self._tokens.update(tokens)
        for lease in active:
            self._ledger.reserve(Entry(lease.id, lease.device, lease.bytes, EntryKind.LEASE))
            self._active[lease.id] = lease
            heapq.heappush(self._expiry_heap, (lease.expires_at, lease.id))
            token = self._tokens.get(lease.device, 0)
            self._tokens[lease.device] = max(token, lease.fencing_token)
        for e in sorted(ended, key=lambda e: e.at):
            self._ended[e.id] = e

    # --- queries -----------------------------------------------------------
    def get(self, lease_id: str) -> Lease | None:
        return self._active.get(lease_id)

    def active(self) -> list[Lease]:
        return list(self._active.values())

    def waiters(self) -> list[Waiter]:
        return sorted(self._waiters.values(), key=_waiter_order)

    def last_token(self, device: str) -> int:
        return self._tokens.get(device, 0)

    def next_expiry(self) -> float | None:
        heap = self._expiry_heap
        while heap:
            at, lease_id = heap[0]
            lease = self._active.get(lease_id)
            if lease is not None and lease.expires_at == at:
                return at
            heapq.heappop(heap)  # stale: renewed or ended since
        return None

    def take_due(self, now: float) -> list[Lease]:
        """Active leases whose TTL has run out by ``now``. The caller must end
        each with ``apply_end`` (expiry happens whether or not it persists)."""
        found: list[Lease] = []
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            at, lease_id = heapq.heappop(heap)
            lease = self._active.get(lease_id)
            if lease is not None and lease.expires_at == at:
                found.append(lease)
        return found

    # --- acquire -------------------------------------------------------------
    def _candidates(self, request: LeaseRequest) -> list[str]:
        if request.device is None:
            return self._ledger.device_ids()
        if not self._ledger.has_device(request.device):
            known = ", ".join(self._ledger.device_ids())
            raise DeviceNotFound(
                f"device: unknown device {request.device!r} (known: {known})",
                field="device",
                value=request.device,
            )
        return [request.device]

    def _held_above(self, priority: int) -> set[str]:
        """Devices held for a reclaim of higher priority than ``priority``."""
        return {device for device, p in self._holds.values() if p > priority}

    def _blocked_for(self, priority: int) -> set[str]:
        """Devices a request of ``priority`` may not use: a waiter of equal or
        higher priority is first in line for them, or a reclaim holds them."""
        blocked = self._held_above(priority)
        for w in self._waiters.values():
            if w.request.priority >= priority:
                blocked.update(self._candidates(w.request))
        return blocked

    def _retry_after(self, devices: list[str], now: float) -> float:
        soonest = min(
            (lease.expires_at for lease in self._active.values() if lease.device in devices),
            default=None,
        )
        if soonest is None:
            return MIN_RETRY_AFTER_S
        return min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, soonest - now))

    def _new_lease(self, request: LeaseRequest, device: str, lease_id: str, now: float) -> Lease:
        return Lease(
            id=lease_id,
            device=device,
            bytes=request.bytes,
            holder=request.holder,
            pid=request.pid,
            priority=request.priority,
            preemptible=request.preemptible,
            fencing_token=self._tokens.get(device, 0) + 1,
            ttl_s=request.ttl_s,
            created_at=now,
            expires_at=now + request.ttl_s,
            yield_s=request.yield_s,
            owner=request.owner,
        )

    def _victims(self, request: LeaseRequest, device: str) -> list[Lease] | None:
        """The fewest low-priority preemptible leases whose revocation makes room."""
        need = request.bytes - self._ledger.free(device)
        if need <= 0:
            return []
        pool = sorted(
            (
                lease
                for lease in self._active.values()
                if lease.device == device
                and lease.preemptible
                and lease.priority < request.priority
            ),
            key=lambda lease: (lease.priority, -lease.created_at),
        )
        chosen: list[Lease] = []
        for lease in pool:
            chosen.append(lease)
            need -= lease.bytes
            if need <= 0:
                return chosen
        return None

    def check_could_ever_fit(self, request: LeaseRequest) -> list[str]:
        """The devices ``request`` may use; raises ExceedsCapacity when it could
        fit none of them even empty, DeviceNotFound for an unknown one."""
        candidates = self._candidates(request)
        if not any(self._ledger.could_ever_fit(d, request.bytes) for d in candidates):
            largest = max(candidates, key=self._ledger.capacity)
            raise ExceedsCapacity(
                f"requested {format_size(request.bytes)} but the largest eligible device, "
                f"{largest}, has a capacity of {format_size(self._ledger.capacity(largest))}; "
                "it can never fit",
                requested_bytes=request.bytes,
                capacity_bytes=self._ledger.capacity(largest),
                device=largest,
            )
        return candidates

    def decide_acquire(self, request: LeaseRequest, lease_id: str, now: float) -> Grant | Blocked:
        """Grant, possibly by preempting, or say it is blocked. Never mutates.

        Raises ExceedsCapacity when no eligible device could hold the request
        even empty, and DeviceNotFound for an unknown pinned device.
        """
        candidates = self.check_could_ever_fit(request)
        blocked = self._blocked_for(request.priority)
        eligible = [d for d in candidates if d not in blocked]
        device = self._ledger.best_fit(request.bytes, eligible)
        if device is not None:
            return Grant(self._new_lease(request, device, lease_id, now))
        options = [(d, v) for d in eligible if (v := self._victims(request, d))]
        if options:
            device, victims = min(options, key=lambda o: sum(lease.bytes for lease in o[1]))
            return Grant(self._new_lease(request, device, lease_id, now), tuple(victims))
        return Blocked(
            free=max(self._ledger.free(d) for d in candidates),
            retry_after_s=self._retry_after(candidates, now),
        )

    def apply_grant(self, grant: Grant, now: float) -> None:
        for victim in grant.revoked:
            self.apply_end(victim.id, EndState.REVOKED, now)
        lease = grant.lease
        self._ledger.reserve(Entry(lease.id, lease.device, lease.bytes, EntryKind.LEASE))
        self._active[lease.id] = lease
        self._tokens[lease.device] = lease.fencing_token
        heapq.heappush(self._expiry_heap, (lease.expires_at, lease.id))

    def undo_grant(self, lease: Lease) -> None:
        """Take back a grant that was never stored, as if it had not been made.
        The fencing token stays used: tokens only ever go up."""
        if self._active.pop(lease.id, None) is not None:
            self._ledger.release(lease.id)

    # --- waiting -------------------------------------------------------------
    def enqueue(self, seq: int, request: LeaseRequest, now: float) -> None:
        self._waiters[seq] = Waiter(seq, request, now)

    def drop_waiter(self, seq: int) -> None:
        self._waiters.pop(seq, None)

    def waiter_count(self) -> int:
        return len(self._waiters)

    def next_waiter_grant(self, lease_id: str, now: float) -> tuple[Waiter, Grant] | None:
        """The first waiter, in priority order, that fits a device not blocked by
        an earlier waiter. Waiters never preempt. Never mutates."""
        blocked: set[str] = set()
        for w in sorted(self._waiters.values(), key=_waiter_order):
            candidates = self._candidates(w.request)
            held = self._held_above(w.request.priority)
            eligible = [d for d in candidates if d not in blocked and d not in held]
            device = self._ledger.best_fit(w.request.bytes, eligible)
            if device is not None:
                return w, Grant(self._new_lease(w.request, device, lease_id, now))
            blocked.update(candidates)
        return None

    # --- yielding ------------------------------------------------------------
    def hold(self, key: int, device: str, priority: int) -> None:
        self._holds[key] = (device, priority)

    def unhold(self, key: int) -> None:
        self._holds.pop(key, None)

    def yieldable(self, devices: list[str], below: int) -> list[Lease]:
        """Yieldable leases on ``devices`` of priority lower than ``below``, in the
        order they should be asked: lowest priority first, then newest."""
        return sorted(
            (
                lease
                for lease in self._active.values()
                if lease.yield_s is not None and lease.priority < below and lease.device in devices
            ),
            key=lambda lease: (lease.priority, -lease.created_at),
        )

    def to_reclaim(self, request: LeaseRequest) -> list[Lease]:
        """The yieldable leases to ask so that ``request`` fits: on the eligible
        device where the fewest bytes must yield; [] when none would do."""
        best: list[Lease] = []
        for device in self._candidates(request):
            shortfall = request.bytes - self._ledger.free(device)
            if shortfall <= 0 or not self._ledger.could_ever_fit(device, request.bytes):
                continue
            chosen: list[Lease] = []
            for lease in self.yieldable([device], request.priority):
                chosen.append(lease)
                shortfall -= lease.bytes
                if shortfall <= 0:
                    break
            if shortfall <= 0 and (
                not best or sum(x.bytes for x in chosen) < sum(x.bytes for x in best)
            ):
                best = chosen
        return best

    def asked_to_yield(self, lease: Lease, now: float) -> Lease | None:
        """The lease with its yield deadline set, or None if it is not
        yieldable or was asked already (the first deadline stands)."""
        if lease.yield_s is None or lease.yield_by is not None:
            return None
        return replace(lease, yield_by=now + lease.yield_s)

    def apply_update(self, lease: Lease) -> None:
        """Put a changed copy of a live lease in place (a yield request, a pid);
        its bytes, device and deadline are as they were."""
        if lease.id in self._active:
            self._active[lease.id] = lease

    def yield_overdue(self, now: float) -> list[Lease]:
        return [
            lease
            for lease in self._active.values()
            if lease.yield_by is not None and lease.yield_by <= now
        ]

    def next_yield_deadline(self) -> float | None:
        return min(
            (lease.yield_by for lease in self._active.values() if lease.yield_by is not None),
            default=None,
        )

    # --- renew, release, end -------------------------------------------------
    def _ended_error(self, lease_id: str) -> Exception:
        ended = self._ended.get(lease_id)
        if ended is None:
            return LeaseNotFound(f"no lease with id {lease_id!r}", lease_id=lease_id)
        if ended.state is EndState.REVOKED:
            return LeaseRevoked(
                f"lease {lease_id} was revoked by a higher-priority request; acquire a new one",
                lease_id=lease_id,
            )
        if ended.state is EndState.EXPIRED:
            return LeaseExpired(
                f"lease {lease_id} expired (its TTL ran out without a renew); acquire a new one",
                lease_id=lease_id,
            )
        return LeaseReleased(f"lease {lease_id} was released", lease_id=lease_id)

    def check_held(self, lease_id: str, fencing_token: int | None, now: float) -> Lease:
        """The live lease, or the error that explains why it is not live."""
        lease = self._active.get(lease_id)
        if lease is None:
            raise self._ended_error(lease_id)
        if lease.expires_at <= now:
            raise LeaseExpired(
                f"lease {lease_id} expired (its TTL ran out without a renew); acquire a new one",
                lease_id=lease_id,
            )
        if fencing_token is not None and fencing_token != lease.fencing_token:
            raise FencingTokenMismatch(
                f"fencing_token {fencing_token} does not match lease {lease_id} "
                f"(token {lease.fencing_token}); this caller does not hold it",
                lease_id=lease_id,
            )
        return lease

    def renewed(self, lease: Lease, ttl_s: float, now: float) -> Lease:
        return replace(lease, ttl_s=ttl_s, expires_at=now + ttl_s)

    def apply_renew(self, lease: Lease) -> None:
        self._active[lease.id] = lease
        heapq.heappush(self._expiry_heap, (lease.expires_at, lease.id))
        if len(self._expiry_heap) > 2 * len(self._active) + 64:
            self._expiry_heap = [(lease.expires_at, lease.id) for lease in self._active.values()]
            heapq.heapify(self._expiry_heap)

    def apply_end(self, lease_id: str, state: EndState, now: float) -> Lease | None:
        lease = self._active.pop(lease_id, None)
        if lease is not None:
            self._ledger.release(lease_id)
            self._ended[lease_id] = Ended(lease_id, state, now)
        return lease

    def forget_ended(self, before: float, keep_at_most: int) -> list[str]:
        """Drop what is remembered of leases that ended before ``before``, and the
        oldest beyond ``keep_at_most``. Returns the forgotten ids."""
        gone: list[str] = []
        excess = len(self._ended) - keep_at_most
        for lease_id, ended in list(self._ended.items()):
            if ended.at >= before and excess <= 0:
                break
            del self._ended[lease_id]
            gone.append(lease_id)
            excess -= 1
        return gone
