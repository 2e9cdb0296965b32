"""Watching the devices: observed memory use into the ledger.

Every ``devices.poll_interval_s`` the probes are read off the event loop (NVML
and psutil calls block), and the readings are applied on it: each device's
external use, and each entry's measured use back to the part that owns the
entry. A device that cannot be read keeps its last figure, marked stale in
the ledger (``/v1/devices`` shows ``reading: stale`` and the error) until a
reading succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from moc.devices.probe import DeviceProbe, DeviceReading
from moc.ledger import Claim, Ledger, attribute
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

ClaimSource = Callable[[], list[Claim]]
UsageSink = Callable[[dict[str, int]], None]


class DeviceMonitor:
    def __init__(
        self,
        probes: list[DeviceProbe],
        ledger: Ledger,
        metrics: Metrics,
        interval_s: float,
        claims: list[ClaimSource],
        usage_sinks: list[UsageSink],
        on_more_free: Callable[[], None],
    ) -> None:
        self._probes = probes
        self._ledger = ledger
        self._metrics = metrics
        self._interval_s = interval_s
        self._claims = claims
        self._sinks = usage_sinks
        self._on_more_free = on_more_free
        self._failing: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def _read_all(self, pids: set[int]) -> list[DeviceReading]:
        readings: list[DeviceReading] = []
        for probe in self._probes:
            readings.extend(probe.read(pids))
        return readings

    async def observe_once(self) -> None:
        claims = [c for source in self._claims for c in source()]
        pids = {c.pid for c in claims if c.pid is not None}
        readings = await asyncio.to_thread(self._read_all, pids)
        # Claims may have changed while the probes were read; attribute with
        # the current ones so no entry that just ended is charged.
        claims = [c for source in self._claims for c in source()]
        usage: dict[str, int] = {}
        grew = False
        for reading in readings:
            if reading.error is not None:
                self._metrics.device_read_errors.labels(reading.id).inc()
                self._ledger.mark_unread(reading.id, reading.error)
                if reading.id not in self._failing:
                    self._failing.add(reading.id)
                    event(
                        log,
                        logging.WARNING,
                        "device could not be read; keeping last figures",
                        device=reading.id,
                        error=reading.error,
                    )
                continue
            if reading.id in self._failing:
                self._failing.discard(reading.id)
                event(log, logging.INFO, "device readable again", device=reading.id)
            share = attribute(
                reading.used, reading.process_usage, [c for c in claims if c.device == reading.id]
            )
            before = self._ledger.free(reading.id)
            self._ledger.set_external(reading.id, share.external)
            grew = grew or self._ledger.free(reading.id) > before
            usage.update(share.used_by_entry)
        for sink in self._sinks:
            sink(usage)
        if grew:
            self._on_more_free()

    async def run(self) -> None:
        while True:
            try:
                await self.observe_once()
            except Exception as exc:
                event(log, logging.ERROR, "device observation failed", error=repr(exc))
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="device-monitor")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for probe in self._probes:
            probe.close()
