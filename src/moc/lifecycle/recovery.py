"""After a restart of moc: take over the runtimes an earlier moc left serving,
stop the ones that cannot be taken over, and warn about model files that
cannot load.

Each kind of runtime says which of its runtimes survived
(:meth:`~moc.backends.runtime.Runtime.survivors`); a survivor's memory is
reserved through the table's one reservation, like a load's. A recorded
runtime whose model left the catalog is stopped: nothing moc started runs on
unaccounted.
"""

from __future__ import annotations

import logging

from moc.backends.process_runtime import stop_leftover
from moc.backends.record import RuntimeRecord
from moc.lifecycle.loader import Loader
from moc.lifecycle.records import RuntimeStore
from moc.lifecycle.table import ModelTable
from moc.lifecycle.usage import Usage
from moc.telemetry.logs import event

log = logging.getLogger(__name__)


async def recover(
    table: ModelTable, loader: Loader, usage: Usage, store: RuntimeStore
) -> tuple[int, int]:
    """Adopt or stop the runtimes an earlier moc left running; (adopted, stopped)."""
    records = store.runtimes()
    devices = list(table.devices.values())
    adopted = stopped = 0
    settled: set[str] = set()
    for runtime in table.runtimes.kinds():
        specs = [s.spec for s in table.slots() if s.runtime is runtime and s.supervisor is None]
        names = {s.name for s in specs}
        found = await runtime.survivors(specs, [r for r in records if r.model in names], devices)
        for survivor in found.survivors:
            slot = table.slot(survivor.model)
            survivor.take_over(loader.take_over(slot, survivor.device, survivor.sizing))
            await usage.measure_now(slot)
            adopted += 1
            settled.add(survivor.model)
        for name in found.gone + found.stopped:
            store.forget_runtime(name)
            settled.add(name)
        stopped += len(found.stopped)
        for name in found.stopped:
            _stopped(next(r for r in records if r.model == name))
    # Recorded runtimes of models no longer in the catalog, or no longer run
    # this way: nothing moc started may run on unaccounted.
    for record in records:
        if record.model in settled:
            continue
        if await stop_leftover(record, table.runtimes.ctx.policy.stop_grace_s):
            stopped += 1
            _stopped(record)
        store.forget_runtime(record.model)
    return adopted, stopped


def _stopped(record: RuntimeRecord) -> None:
    event(
        log,
        logging.INFO,
        "stopped a runtime left by an earlier moc",
        model=record.model,
        pid=record.pid,
    )


async def check_files(table: ModelTable) -> int:
    """Warn about each model whose file is missing or unreadable; moc still
    starts, and a load of such a model fails with what is wrong. How many."""
    bad = 0
    for slot in table.slots():
        if slot.spec.artifact is not None:
            continue  # verified, file by file, before each load
        problem = await slot.runtime.check(slot.spec)
        if problem is not None:
            bad += 1
            event(
                log, logging.WARNING, "model file cannot load", model=slot.spec.name, error=problem
            )
    return bad
