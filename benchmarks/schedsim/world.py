"""The simulated world: a virtual clock with an event heap, and the record of
what happened (each request's start or end, loads, memory held).

No asyncio and no real time: :meth:`Loop.run` pops events in time order
(ties in the order they were scheduled) and checks the memory held by
runtimes after every event. A model holds memory from the moment its runtime
starts until its runtime has exited; holding more than the budget at any
event is a budget violation.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.schedsim.trace import Request, Trace
from moc.scheduler.waiting import Priority


class Loop:
    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._after: list[Callable[[], None]] = []

    def at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (max(t, self.now), next(self._seq), action))

    def soon(self, action: Callable[[], None]) -> None:
        self.at(self.now, action)

    def after_each(self, check: Callable[[], None]) -> None:
        self._after.append(check)

    def run(self) -> None:
        while self._heap:
            t, _, action = heapq.heappop(self._heap)
            self.now = t
            action()
            for check in self._after:
                check()


@dataclass
class Result:
    policy: str
    trace: str
    requests: int
    loads: int = 0
    failed_loads: int = 0
    waits: dict[Priority, list[float]] = field(default_factory=dict)  # arrival → service start
    timed_out: dict[Priority, int] = field(default_factory=dict)
    failed: int = 0  # answered with an error other than a timeout (e.g. insufficient memory)
    violations: int = 0  # events after which runtimes held more than the budget
    peak_held: int = 0
    start_order: list[str] = field(default_factory=list)  # models, in order of service start
    answer_s: list[float] = field(default_factory=list)  # arrival to the end of service

    @property
    def served(self) -> int:
        return sum(len(w) for w in self.waits.values())

    @property
    def answered(self) -> int:
        return self.served + sum(self.timed_out.values()) + self.failed


class Recorder:
    """The one owner of the outcome: every policy reports to it, nothing else
    counts. It also owns the memory held by runtimes, to check the budget."""

    def __init__(self, policy: str, trace: Trace, loop: Loop) -> None:
        self.result = Result(policy, trace.name, len(trace.requests))
        for p in Priority:
            self.result.waits[p] = []
            self.result.timed_out[p] = 0
        self._budget = trace.budget
        self._held: dict[str, int] = {}
        self._loop = loop
        self._done: set[int] = set()
        loop.after_each(self._check)

    # --- requests ------------------------------------------------------------------
    def started(self, request: Request) -> None:
        self._once(request)
        waited = self._loop.now - request.arrival
        self.result.waits[request.priority].append(waited)
        self.result.start_order.append(request.model)
        self.result.answer_s.append(waited + request.service_s)

    def timed_out(self, request: Request) -> None:
        self._once(request)
        self.result.timed_out[request.priority] += 1

    def failed(self, request: Request) -> None:
        self._once(request)
        self.result.failed += 1

    def _once(self, request: Request) -> None:
        if request.id in self._done:
            raise AssertionError(f"request {request.id} answered twice")
        self._done.add(request.id)

    # --- models ----------------------------------------------------------------------
    def runtime_started(self, model: str, nbytes: int) -> None:
        if model in self._held:
            raise AssertionError(f"model {model} started twice")
        self._held[model] = nbytes

    def runtime_exited(self, model: str) -> None:
        del self._held[model]

    def loaded(self) -> None:
        self.result.loads += 1

    def load_failed(self) -> None:
        self.result.failed_loads += 1

    def _check(self) -> None:
        held = sum(self._held.values())
        self.result.peak_held = max(self.result.peak_held, held)
        if held > self._budget:
            self.result.violations += 1


class Simulated:
    """A policy under simulation: each request of its trace is handed to
    ``_arrive`` at its arrival time, and the loop runs to the end."""

    trace: Trace
    loop: Loop
    rec: Recorder

    def run(self) -> Result:
        for request in self.trace.requests:
            self.loop.at(request.arrival, lambda r=request: self._arrive(r))
        self.loop.run()
        return self.rec.result

    def _arrive(self, request: Request) -> None:
        raise NotImplementedError
