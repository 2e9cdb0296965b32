"""One model's place in the table: the mutable :class:`Slot` the lifecycle
works on, and the frozen :class:`ModelView` the transports are given.

Ownership: slots belong to :class:`~moc.lifecycle.table.ModelTable` and are
written on the event loop only, each field by one part (see design.md). The
transports never see a slot: :func:`view_of` copies what they show, as the
ledger hands out ``DeviceView`` instead of its entries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from moc.backends.runtime import Handle, Runtime
from moc.backends.state import HOLDS_MEMORY, State
from moc.backends.supervisor import Supervisor
from moc.models.catalog import Sizing
from moc.models.spec import ModelSpec


@dataclass
class Slot:
    spec: ModelSpec
    runtime: Runtime
    supervisor: Supervisor | None = None
    device: str | None = None  # where its memory is (or was last) reserved
    sizing: Sizing | None = None  # the plan of its last load
    reserved: int = 0
    measured: int | None = None  # the most this run of the runtime was seen using
    in_flight: int = 0
    draining: bool = False  # a load waits for its requests to finish, to evict it
    last_used: float = 0.0
    load_s: float | None = None  # the last cold load, start to ready
    last_error: str | None = None  # why the last load failed; cleared by one that works
    loading: asyncio.Task[Handle] | None = None
    stopping: asyncio.Task[None] | None = None
    # The registry adapters its runtime was started with, in the ids the
    # runtime gave them (name, digest): set by the loader with its spec.
    lora: tuple[tuple[str, str], ...] = ()
    adding: set[str] = field(default_factory=set)  # adapters being loaded while it runs

    @property
    def state(self) -> State:
        return self.supervisor.state if self.supervisor else State.STOPPED

    def unload_in(self, now: float) -> float | None:
        """Seconds until an idle unload, if one is due (None: never, or busy)."""
        if self.state is not State.READY or self.spec.keep_alive < 0 or self.in_flight:
            return None
        return max(0.0, self.last_used + self.spec.keep_alive - now)


@dataclass(frozen=True)
class ModelView:
    """A model as the transports show it, copied at one moment."""

    spec: ModelSpec
    state: State
    device: str | None  # None while it holds no memory
    pid: int | None
    sizing: Sizing | None
    reserved: int
    measured: int | None
    in_flight: int
    load_s: float | None
    runtime_start_s: float | None
    failures: int
    last_error: str | None
    unload_in_s: float | None


def view_of(slot: Slot, now: float) -> ModelView:
    sup = slot.supervisor
    state = slot.state
    return ModelView(
        spec=slot.spec,
        state=state,
        device=slot.device if state in HOLDS_MEMORY else None,
        pid=sup.process.pid if sup and sup.process else None,
        sizing=slot.sizing,
        reserved=slot.reserved,
        measured=slot.measured,
        in_flight=slot.in_flight,
        load_s=slot.load_s,
        runtime_start_s=sup.runtime_start_s if sup else None,
        failures=sup.failures if sup else 0,
        # A crash while ready is the supervisor's to tell; a load that failed
        # before any runtime started (a corrupt file) is the slot's.
        last_error=(sup.last_error if sup else None) or slot.last_error,
        unload_in_s=slot.unload_in(now),
    )
