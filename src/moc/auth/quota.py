"""Device byte-seconds per day: the memory a key's leases and learning jobs
hold, times how long, counted per UTC day against the key's limit.

Ended leases are added up here (and in the store, so a restart keeps the
day's count); live ones are counted from the lease table when asked. A lease
is admitted only if what the key used today, plus what its live leases will
use until they expire, plus this lease for its whole TTL, fits the limit; a
renewal the same way. Only the part of a lease's life inside today counts.

In a cluster the key's leases on the other nodes count too: each node
publishes what the key's leases hold on it (:meth:`DeviceQuota.changes`) and
the gateway hands in the others' total, read before a lease is asked for
(:meth:`DeviceQuota.seen_elsewhere`). The check stays synchronous: it counts
the others as last read (see docs/cluster.md).

Owner: the event-loop thread (the lease service calls in, without awaits).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from moc.auth.principal import Limits
from moc.auth.store import AuthStore
from moc.errors import RateLimited, StoreUnavailable
from moc.leases.model import Lease
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

DAY = 86_400.0
# An owner checked here is watched this long for a change to publish: a lease
# may wait for memory (leases.max_wait_s, 600 s by default) before its grant.
WATCH_S = 600.0


def day_of(now: float) -> tuple[str, float]:
    """The UTC day ``now`` falls in, as ``YYYY-MM-DD``, and when it began."""
    start = now - now % DAY
    return time.strftime("%Y-%m-%d", time.gmtime(start)), start


def _held(lease: Lease, day_start: float, until: float) -> float:
    """Byte-seconds ``lease`` holds from the start of the day (or its grant) to ``until``."""
    return lease.bytes * max(0.0, until - max(lease.created_at, day_start))


class DeviceQuota:
    def __init__(
        self,
        store: AuthStore,
        limits_of: Callable[[str], Limits | None],
        live_of: Callable[[str], Iterable[Lease]],
    ) -> None:
        self._store = store
        self._limits_of = limits_of  # an owner's limits, None: unknown owner
        self._live_of = live_of
        self._day = ""
        self._ended: dict[str, float] = {}
        self._elsewhere: dict[str, float] = {}  # owner → held today on other nodes, as last read
        self._watched: dict[str, float] = {}  # owner → when last checked or ended here
        self._published: dict[str, float] = {}  # owner → held here, as last handed out

    def _today(self, now: float) -> tuple[dict[str, float], float]:
        day, start = day_of(now)
        if day != self._day:
            self._day, self._ended = day, self._store.device_use(day)
            self._elsewhere, self._published = {}, {}
            # Owners with live leases go on into the new day; the rest are
            # dropped here too, where nothing asks for changes (no cluster).
            self._watched = {
                owner: since
                for owner, since in self._watched.items()
                if now - since <= WATCH_S or any(True for _ in self._live_of(owner))
            }
        return self._ended, start

    def used(self, owner: str, now: float) -> float:
        """Byte-seconds the owner's leases held today, up to now."""
        ended, start = self._today(now)
        live = self._live_of(owner)
        return ended.get(owner, 0.0) + sum(_held(lease, start, now) for lease in live)

    def _committed(self, owner: str, now: float, renewing: str = "") -> tuple[float, int]:
        """Byte-seconds the owner's leases here hold today: the ended ones, the
        live ones until they expire (the one renewed only until now); and how
        many are live."""
        ended, start = self._today(now)
        committed, live = ended.get(owner, 0.0), 0
        for lease in self._live_of(owner):
            until = now if lease.id == renewing else min(max(now, lease.expires_at), start + DAY)
            committed += _held(lease, start, until)
            live += 1
        return committed, live

    def seen_elsewhere(self, owner: str, held: float, now: float) -> None:
        """What the owner's leases on the other nodes hold today, as just read."""
        self._today(now)
        self._elsewhere[owner] = held

    def changes(self, now: float) -> tuple[str, dict[str, float]]:
        """The day, and what the owner's leases here hold that day for each
        owner whose hold changed since it was last handed out (for the other
        nodes to count). Owners are looked at while they have live leases
        here, or were checked or ended here in the last ``WATCH_S``."""
        self._today(now)
        found: dict[str, float] = {}
        for owner, since in list(self._watched.items()):
            committed, live = self._committed(owner, now)
            last = self._published.get(owner)
            if last is None or abs(committed - last) >= 1:
                found[owner] = self._published[owner] = committed
            if not live and now - since > WATCH_S:
                del self._watched[owner]
        return self._day, found

    def check(self, owner: str, nbytes: int, ttl_s: float, now: float, renewing: str = "") -> None:
        """RateLimited when holding ``nbytes`` for ``ttl_s`` more would pass the
        owner's daily limit. ``renewing``: the lease being renewed, whose
        remaining time is replaced by the new TTL."""
        if not owner:
            return
        self._watched[owner] = now
        limits = self._limits_of(owner)
        cap = None if limits is None else limits.device_byte_seconds_per_day
        if cap is None:
            return
        _, start = self._today(now)
        here, _ = self._committed(owner, now, renewing)
        elsewhere = self._elsewhere.get(owner, 0.0)
        committed = here + elsewhere
        asked = nbytes * min(ttl_s, start + DAY - now)
        if committed + asked > cap:
            where = f" ({elsewhere:.0f} of them on other nodes)" if elsewhere else ""
            raise RateLimited(
                f"key {owner} has used {committed:.0f} of its {cap} device byte-seconds "
                f"today{where}; {nbytes} bytes for {ttl_s:g} s more would pass it",
                retry_after_s=start + DAY - now,
                limit=cap,
                used=round(committed),
                field="device_byte_seconds_per_day",
            )

    def ended(self, lease: Lease, now: float) -> None:
        """Add an ended lease's share of today: until now, or until it expired
        (a lease reaped late, or found expired at a restart, is not charged
        for the wait). Kept in the store for owners with a limit, so a restart
        keeps the day's count; a store that fails is logged, never raised
        into the lease service's clean-up."""
        if not lease.owner:
            return
        self._watched[lease.owner] = now
        ended, start = self._today(now)
        used = _held(lease, start, min(now, lease.expires_at))
        if used <= 0:
            return
        ended[lease.owner] = ended.get(lease.owner, 0.0) + used
        limits = self._limits_of(lease.owner)
        if limits is None or limits.device_byte_seconds_per_day is None:
            return
        try:
            self._store.add_device_use(lease.owner, self._day, used)
        except StoreUnavailable as exc:
            event(
                log, logging.ERROR, "could not store device use", owner=lease.owner, error=str(exc)
            )
