"""Idle unload: a ready model with no request in flight for its ``keep_alive``
is stopped. One task, looking twice a second; the stop itself runs in the
background so one slow runtime does not hold up the others' unloads."""

from __future__ import annotations

import asyncio

from moc.backends.state import State
from moc.clock import Clock
from moc.lifecycle.loader import Loader
from moc.lifecycle.table import ModelTable
from moc.telemetry.metrics import Metrics

SWEEP_S = 0.5


class IdleSweeper:
    def __init__(self, table: ModelTable, loader: Loader, clock: Clock, metrics: Metrics) -> None:
        self._table = table
        self._loader = loader
        self._clock = clock
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep(), name="idle models")

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            now = self._clock.now()
            for slot in self._table.slots():
                keep = slot.spec.keep_alive
                if (
                    keep >= 0
                    and slot.state is State.READY
                    and slot.in_flight == 0
                    and slot.loading is None
                    and now - slot.last_used >= keep
                ):
                    self._metrics.model_evictions.labels(slot.spec.name, "idle").inc()
                    self._loader.stop_soon(slot, f"idle for {keep:g} s")
