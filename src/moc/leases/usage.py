"""What each lease holder's process was measured using, and which use more
than they leased. Owned by the lease service, on the event loop; the device
monitor reports into it, and it forgets a lease when the lease ends."""

from __future__ import annotations

import logging

from moc.leases.model import Lease
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


class LeaseUsage:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._used: dict[str, int] = {}  # lease id → bytes its pid was last seen using
        self._over: set[str] = set()  # leases whose pid uses more than they leased

    def used(self, lease_id: str) -> int | None:
        return self._used.get(lease_id)

    def over(self, lease_id: str) -> bool:
        return lease_id in self._over

    def forget(self, lease_id: str) -> None:
        self._used.pop(lease_id, None)
        self._over.discard(lease_id)

    def note(self, lease: Lease, used: int) -> None:
        """Record a measurement; report overuse once when it starts and once
        when it stops."""
        self._used[lease.id] = used
        if used > lease.bytes and lease.id not in self._over:
            self._over.add(lease.id)
            self._metrics.lease_overuse.labels(lease.device).inc()
            event(log, logging.WARNING, "lease holder uses more than it leased", lease=lease.id,
                  holder=lease.holder, pid=lease.pid, device=lease.device, leased=lease.bytes,
                  used=used)  # fmt: skip
        elif used <= lease.bytes and lease.id in self._over:
            self._over.discard(lease.id)
            event(log, logging.INFO, "lease holder back within its lease", lease=lease.id,
                  holder=lease.holder, pid=lease.pid, leased=lease.bytes, used=used)  # fmt: skip
