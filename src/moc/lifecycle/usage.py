"""Sizing that learns: what a model's runtime really uses, and what to plan
for after it ran out of memory.

A measured figure replaces the reservation (unless ``memory`` is configured)
and is remembered by the size key (model, file fingerprint, ctx, parallel,
kind of device), so the next load plans with it. After an out-of-memory
failure the next plan grows by ``OOM_GROWTH``. Runs on the event loop; a
figure smaller than the last by ``MEASURE_SLACK`` or less changes nothing, so
the monitor's readings do not churn the ledger or the database.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from moc.backends.state import State
from moc.clock import Clock
from moc.errors import StoreUnavailable
from moc.lifecycle.slot import Slot
from moc.lifecycle.table import ModelTable
from moc.models.store import SizeStore
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics
from moc.units import format_size

log = logging.getLogger(__name__)

Measure = Callable[[int, str], Awaitable[int | None]]  # (pid, device) → bytes, or None
OOM_GROWTH = 1.25  # after an out-of-memory failure, plan for this much more
MEASURE_SLACK = 1 << 20  # ignore changes in measured use smaller than 1 MiB


class Usage:
    def __init__(
        self,
        table: ModelTable,
        sizes: SizeStore,
        clock: Clock,
        metrics: Metrics,
        measure: Measure,
    ) -> None:
        self._table = table
        self._sizes = sizes
        self._clock = clock
        self._metrics = metrics
        self._measure = measure

    def note_usage(self, usage: dict[str, int]) -> None:
        """Measured use per ledger entry, from the device monitor."""
        for slot in self._table.slots():
            used = usage.get(slot.spec.entry_id)
            if used is not None and used > 0 and slot.state is State.READY:
                self.note_measured(slot, used)

    async def measure_now(self, slot: Slot) -> None:
        sup = slot.supervisor
        if sup is None or sup.process is None or slot.device is None:
            return
        used = await self._measure(sup.process.pid, slot.device)
        if used is not None and used > 0 and slot.state is State.READY:
            self.note_measured(slot, used)

    def note_measured(self, slot: Slot, used: int) -> None:
        """Charge the model what it really uses, and remember it for next time."""
        if slot.measured is not None and used <= slot.measured + MEASURE_SLACK:
            return
        slot.measured = used
        self._metrics.model_measured_bytes.labels(slot.spec.name).set(used)
        if slot.spec.memory is None:
            self._table.resize(slot, used)
        if slot.sizing is not None:
            try:
                self._sizes.save_measured(slot.sizing.key, used, self._clock.now())
            except StoreUnavailable as exc:
                event(
                    log,
                    logging.WARNING,
                    "measurement not saved",
                    model=slot.spec.name,
                    error=str(exc),
                )

    def on_oom(self, slot: Slot, lines: list[str]) -> None:
        """The runtime's log shows it ran out of memory: plan for more next time."""
        self._metrics.model_ooms.labels(slot.spec.name).inc()
        if slot.sizing is None:
            return
        grown = int(max(slot.reserved, slot.measured or 0) * OOM_GROWTH)
        event(
            log,
            logging.WARNING,
            "runtime ran out of memory",
            model=slot.spec.name,
            line=lines[-1],
            plan_next=format_size(grown),
        )
        with contextlib.suppress(StoreUnavailable):
            self._sizes.save_measured(slot.sizing.key, grown, self._clock.now())
