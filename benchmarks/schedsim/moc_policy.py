"""moc's scheduling, replayed: the real :class:`WaitingRoom` and the real
:func:`moc.lifecycle.policy.place`, glued together the way the daemon does.

What is modelled from the daemon (``moc.scheduler.task``,
``moc.lifecycle.loader``, ``moc.dispatch.service``):

- a request is offered to the room; a step (expire, then ``choose``) runs on
  every arrival and request end, and soon after any model's state changes or
  when the room's ``next_check`` timer falls due;
- a chosen request holds its model (``ensure_loaded``): served at once when
  the model is ready, joins the load in progress, or starts one;
- a load asks ``place`` with the ledger's free bytes and the residents (models
  with a ledger entry; busy = requests in flight, loading, starting or
  stopping; idle_s since last use; reload_s = the model's last load, start of
  the load to ready, 1 s before the first): ``Fits`` reserves and starts the
  runtime; ``Evict`` marks the victims stopping, frees their entries,
  reserves, and starts the runtime only once the victims have exited;
  ``Drain`` marks the victims draining (they take no new requests) and
  decides again at every request end or state change, failing the load after
  ``ready_timeout_s``;
- ModelFacts: warm = loading, starting or ready (not stopping); accepting =
  neither draining nor stopping; fits_cold = cold and ``place`` says Fits;
  other_loading = cold while another model's load is under way;
- idle unload after ``keep_alive_s`` without use; the entry is freed when the
  runtime has exited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from benchmarks.schedsim.trace import Request, SimModel, Trace
from benchmarks.schedsim.world import Loop, Recorder, Simulated
from moc.lifecycle import policy
from moc.scheduler.waiting import Limits, ModelFacts, Ticket, WaitingRoom

DEVICE = "dev0"


class State(Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"


@dataclass
class Load:
    started: float
    deadline: float
    waiters: list[Ticket]
    drained: tuple[str, ...] = ()
    victims_left: set[str] = field(default_factory=set)


@dataclass
class Slot:
    model: SimModel
    state: State = State.STOPPED
    reserved: int | None = None  # the ledger entry, if any
    in_flight: int = 0
    draining: bool = False
    last_used: float = 0.0
    load_s: float | None = None
    load: Load | None = None
    after_stop: list[Ticket] = field(default_factory=list)


def default_limits(trace: Trace) -> Limits:
    """moc's defaults (gateway config), with the trace's queue timeouts."""
    return Limits((256, 1024, 4096), trace.timeout_s, 30.0, 2.0, 512)


class MocSim(Simulated):
    def __init__(
        self,
        trace: Trace,
        limits: Limits | None = None,
        ready_timeout_s: float = 120.0,
        name: str = "moc",
    ) -> None:
        self.trace = trace
        self.loop = Loop()
        self.rec = Recorder(name, trace, self.loop)
        self.room = WaitingRoom(limits or default_limits(trace))
        self.slots = {m.name: Slot(m) for m in trace.models}
        self._ready_timeout_s = ready_timeout_s
        self._requests: dict[int, Request] = {}
        self._timer_at: float | None = None
        self._step_queued = False
        self._draining_loads: list[Slot] = []

    # --- the scheduler -------------------------------------------------------------------
    def _arrive(self, request: Request) -> None:
        ticket = Ticket(request.model, request.priority, self.loop.now)
        self._requests[ticket.id] = request
        self.room.offer(ticket)  # queues are far from full in these traces
        self._step()

    def _step(self) -> None:
        now = self.loop.now
        for ticket in self.room.expire(now):
            self.rec.timed_out(self._requests[ticket.id])
        for ticket in self.room.choose(now, self.facts):
            self._hold(ticket)
        at = self.room.next_check(now, self.facts)
        if at is not None and at != self._timer_at:
            self._timer_at = at
            self.loop.at(at + 0.001, lambda: self._timer(at))

    def _timer(self, at: float) -> None:
        if self._timer_at == at:
            self._timer_at = None
            self._step()

    def _poke(self) -> None:
        if not self._step_queued:
            self._step_queued = True
            self.loop.soon(self._poked)

    def _poked(self) -> None:
        self._step_queued = False
        self._step()

    def facts(self, name: str) -> ModelFacts:
        slot = self.slots[name]
        stopping = slot.state is State.STOPPING
        warm = slot.load is not None or slot.state in (State.READY, State.STARTING)
        return ModelFacts(
            slot.model.parallel,
            warm=warm and not stopping,
            accepting=not (slot.draining or stopping),
            fits_cold=not warm and isinstance(self._place(slot), policy.Fits),
            other_loading=not warm
            and any(s.load is not None for s in self.slots.values() if s is not slot),
        )

    # --- the loader ---------------------------------------------------------------------
    def _hold(self, ticket: Ticket) -> None:
        slot = self.slots[ticket.model]
        if slot.state is State.READY:
            self._serve(slot, ticket)
        elif slot.load is not None:
            slot.load.waiters.append(ticket)
        elif slot.state is State.STOPPING:
            slot.after_stop.append(ticket)
        else:
            now = self.loop.now
            slot.load = Load(now, now + self._ready_timeout_s, [ticket])
            self._make_room(slot)

    def _place(self, slot: Slot) -> policy.Decision:
        held = sum(s.reserved for s in self.slots.values() if s.reserved is not None)
        room = policy.Room(DEVICE, self.trace.budget, self.trace.budget - held)
        return policy.place(slot.model.bytes, [room], self._residents())

    def _residents(self) -> list[policy.Resident]:
        now = self.loop.now
        return [
            policy.Resident(
                name=s.model.name,
                device=DEVICE,
                bytes=s.reserved,
                pinned=False,
                busy=s.in_flight > 0
                or s.load is not None
                or s.state in (State.STARTING, State.STOPPING),
                idle_s=max(0.0, now - s.last_used),
                reload_s=s.load_s if s.load_s is not None else 1.0,
            )
            for s in self.slots.values()
            if s.reserved is not None
        ]

    def _make_room(self, slot: Slot) -> None:
        load = slot.load
        assert load is not None
        match self._place(slot):
            case policy.Fits():
                self._set_drained(load, ())
                slot.reserved = slot.model.bytes
                self._start_runtime(slot)
            case policy.Evict(_, names):
                self._set_drained(load, ())
                for name in names:
                    victim = self.slots[name]
                    victim.reserved = None
                    self._stop(victim)
                slot.reserved = slot.model.bytes
                load.victims_left = set(names)
            case policy.Drain(_, names):
                if self.loop.now >= load.deadline:
                    self._fail_load(slot)
                    return
                self._set_drained(load, names)
                self._draining_loads.append(slot)
                self.loop.at(load.deadline, self._wake_loads)
            case _:  # TooLarge, NoRoom: the load fails at once
                self._fail_load(slot)

    def _set_drained(self, load: Load, names: tuple[str, ...]) -> None:
        if names == load.drained:
            return
        for name in load.drained:
            self.slots[name].draining = False
        load.drained = names
        for name in names:
            self.slots[name].draining = True
        self._notify()

    def _wake_loads(self) -> None:
        """A request ended or a state changed: loads waiting for a drain decide again."""
        waiting, self._draining_loads = self._draining_loads, []
        for slot in waiting:
            self.loop.soon(lambda s=slot: self._make_room(s) if s.load is not None else None)

    def _notify(self) -> None:
        self._wake_loads()
        self._poke()

    def _fail_load(self, slot: Slot) -> None:
        load = slot.load
        assert load is not None
        self._set_drained(load, ())
        slot.load = None
        self.rec.load_failed()
        for ticket in load.waiters:
            self.rec.failed(self._requests[ticket.id])
            self.room.withdraw(ticket)
        self._notify()

    def _start_runtime(self, slot: Slot) -> None:
        slot.state = State.STARTING
        self.rec.runtime_started(slot.model.name, slot.model.bytes)
        self._notify()
        self.loop.at(self.loop.now + slot.model.load_s, lambda: self._ready(slot))

    def _ready(self, slot: Slot) -> None:
        load = slot.load
        assert load is not None
        now = self.loop.now
        slot.state = State.READY
        slot.load_s = now - load.started
        slot.last_used = now
        slot.load = None
        self.rec.loaded()
        for ticket in load.waiters:
            self._serve(slot, ticket)
        self._notify()

    def _stop(self, slot: Slot) -> None:
        slot.state = State.STOPPING
        self._notify()
        self.loop.at(self.loop.now + slot.model.unload_s, lambda: self._stopped(slot))

    def _stopped(self, slot: Slot) -> None:
        slot.state = State.STOPPED
        slot.reserved = None
        self.rec.runtime_exited(slot.model.name)
        for other in self.slots.values():
            load = other.load
            if load is not None and slot.model.name in load.victims_left:
                load.victims_left.discard(slot.model.name)
                if not load.victims_left:
                    self._start_runtime(other)
        waiting, slot.after_stop = slot.after_stop, []
        for ticket in waiting:
            self._hold(ticket)
        self._notify()

    # --- requests --------------------------------------------------------------------
    def _serve(self, slot: Slot, ticket: Ticket) -> None:
        request = self._requests[ticket.id]
        slot.in_flight += 1
        slot.last_used = self.loop.now
        self.rec.started(request)
        self.loop.at(self.loop.now + request.service_s, lambda: self._end(slot, ticket))

    def _end(self, slot: Slot, ticket: Ticket) -> None:
        slot.in_flight -= 1
        slot.last_used = now = self.loop.now
        self.loop.at(now + self.trace.keep_alive_s, lambda: self._idle_check(slot))
        self._wake_loads()
        self.room.withdraw(ticket)
        self._step()

    def _idle_check(self, slot: Slot) -> None:
        if (
            slot.state is State.READY
            and slot.in_flight == 0
            and slot.load is None
            and self.loop.now - slot.last_used >= self.trace.keep_alive_s
        ):
            self._stop(slot)
