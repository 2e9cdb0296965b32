"""Device byte-seconds per day: the memory a key's leases and learning jobs
hold, times how long, counted per UTC day against the key's limit.

Ended leases are added up here (and in the store, so a restart keeps the
day's count); live ones are counted from the lease table when asked. A lease
is admitted only if what the key used today, plus what its live leases will
use until they expire, plus this lease for its whole TTL, fits the limit; a
renewal the same way. Only the part of a lease's life inside today counts.

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

    def _today(self, now: float) -> tuple[dict[str, float], float]:
        day, start = day_of(now)
        if day != self._day:
            self._day, self._ended = day, self._store.device_use(day)
        return self._ended, start

    def used(self, owner: str, now: float) -> float:
        """Byte-seconds the owner's leases held today, up to now."""
        ended, start = self._today(now)
        live = self._live_of(owner)
        return ended.get(owner, 0.0) + sum(_held(lease, start, now) for lease in live)

    def check(self, owner: str, nbytes: int, ttl_s: float, now: float, renewing: str = "") -> None:
        """RateLimited when holding ``nbytes`` for ``ttl_s`` more would pass the
        owner's daily limit. ``renewing``: the lease being renewed, whose
        remaining time is replaced by the new TTL."""
        if not owner:
            return
        limits = self._limits_of(owner)
        cap = None if limits is None else limits.device_byte_seconds_per_day
        if cap is None:
            return
        ended, start = self._today(now)
        committed = ended.get(owner, 0.0)
        for lease in self._live_of(owner):
            # a live lease counts until it expires; the one renewed only until now
            until = now if lease.id == renewing else min(max(now, lease.expires_at), start + DAY)
            committed += _held(lease, start, until)
        asked = nbytes * min(ttl_s, start + DAY - now)
        if committed + asked > cap:
            raise RateLimited(
                f"key {owner} has used {committed:.0f} of its {cap} device byte-seconds today; "
                f"{nbytes} bytes for {ttl_s:g} s more would pass it",
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
