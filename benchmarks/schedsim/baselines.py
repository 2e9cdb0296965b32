"""The peers' scheduling, from their documented behaviour, and an offline bound.

**Ollama-like** models ``server/sched.go`` (``processPending``,
``processCompleted``, ``findRunnerToUnload``, ``useLoadedRunner``):

- pending requests are taken one at a time, first in first out, with no
  priorities;
- a request whose model is loaded (or loading) is handed to that runner at
  once; the runner serves ``OLLAMA_NUM_PARALLEL`` requests at a time and
  queues the rest;
- otherwise, with ``OLLAMA_MAX_LOADED_MODELS`` runners loaded, or when the
  model does not fit beside the loaded ones, ``findRunnerToUnload`` sorts
  the runners by keep-alive (session duration; all equal here, and Go's
  unstable sort over a map leaves ties in random order), takes the first
  idle one, or, when none is idle, the first busy one; that runner's
  keep-alive is set to zero so it unloads as soon as its requests finish,
  and the pending loop blocks, every request behind included, until an
  unload completes, then decides again;
- with no runner loaded a model loads without a fit check; while another
  model is still loading on the device, a model that does not fit is put
  back at the end of the pending queue after 250 ms (``reschedDelay``);
- a runner with no requests unloads after its keep-alive (5 min);
- a request whose client gave up (here: its queue timeout) is dropped.

**Plain LRU** is the same first-in-first-out dispatch without those quirks:
loads may overlap, and the victim is the least recently used idle model (or,
when every model is busy, the least recently used one, unloaded when it
finishes).

**Belady's MIN** (:func:`min_loads`) is the fewest loads any policy needs to
start a given sequence of requests in that order while holding at most
``capacity`` equal-size models at once (evict the model used furthest in the
future). Over the arrival order it bounds every policy that starts requests
in arrival order; a policy that reorders requests (moc groups them) can go
below it, so the report also gives MIN over each policy's own start order,
which bounds that policy.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from benchmarks.schedsim.trace import Request, SimModel, Trace
from benchmarks.schedsim.world import Loop, Recorder, Result, Simulated

RESCHED_DELAY_S = 0.25


class Victims(Enum):
    OLLAMA = "ollama-like"  # shortest keep-alive, ties at random; idle first
    LRU = "lru"  # least recently used; idle first


class RunnerState(Enum):
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"


@dataclass
class Runner:
    model: SimModel
    keep_alive_s: float
    state: RunnerState = RunnerState.LOADING
    refs: int = 1  # requests handed to it and not finished
    running: int = 0
    queue: deque[Request] = field(default_factory=deque)
    last_used: float = 0.0
    expiry: int = 0  # the keep-alive timer's generation; a stale timer does nothing


class FifoSim(Simulated):
    def __init__(self, trace: Trace, victims: Victims, *, max_loaded: int, seed: int = 0) -> None:
        self.trace = trace
        self.victims = victims
        self.loop = Loop()
        self.rec = Recorder(victims.value, trace, self.loop)
        self._max_loaded = max_loaded
        self._rng = random.Random(seed)
        self._pending: deque[Request] = deque()
        self._loaded: dict[str, Runner] = {}
        self._unloading: list[Runner] = []
        self._blocked = False  # the pending loop waits for an unload
        self._started: set[int] = set()
        self._gone: set[int] = set()

    # --- the pending loop ---------------------------------------------------------------
    def _arrive(self, request: Request) -> None:
        self._pending.append(request)
        deadline = request.arrival + self.trace.timeout_s[request.priority]
        self.loop.at(deadline, lambda: self._deadline(request))
        self._pump()

    def _pump(self) -> None:
        while self._pending and not self._blocked:
            request = self._pending[0]
            runner = self._loaded.get(request.model)
            if runner is not None:
                self._pending.popleft()
                self._hand(runner, request)
                continue
            if len(self._loaded) >= self._max_loaded:
                victim = self._victim()
            elif not self._loaded and self.victims is Victims.OLLAMA:
                self._pending.popleft()
                self._load(request)
                continue
            elif self.victims is Victims.OLLAMA and any(
                r.state is RunnerState.LOADING for r in self._loaded.values()
            ):
                self._pending.popleft()
                self.loop.at(self.loop.now + RESCHED_DELAY_S, lambda r=request: self._requeue(r))
                continue
            elif self._free() >= self.trace.model(request.model).bytes:
                self._pending.popleft()
                self._load(request)
                continue
            elif self._unloading and self.victims is Victims.LRU:
                victim = None  # an unload in progress may make room: wait for it
            else:
                victim = self._victim()
            self._blocked = True
            if victim is not None:
                victim.keep_alive_s = 0.0
                self._idle(victim)
            return

    def _requeue(self, request: Request) -> None:
        if request.id not in self._gone:
            self._pending.append(request)
            self._pump()

    def _victim(self) -> Runner | None:
        runners = list(self._loaded.values())
        if not runners:
            return None  # only unloads in progress: wait for one
        if self.victims is Victims.OLLAMA:
            self._rng.shuffle(runners)  # map order; the sort below is not stable either
            runners.sort(key=lambda r: r.keep_alive_s)
        else:
            runners.sort(key=lambda r: r.last_used)
        idle = [r for r in runners if r.refs == 0]
        return (idle or runners)[0]

    def _free(self) -> int:
        held = sum(r.model.bytes for r in [*self._loaded.values(), *self._unloading])
        return self.trace.budget - held

    # --- runners ------------------------------------------------------------------------
    def _load(self, request: Request) -> None:
        model = self.trace.model(request.model)
        runner = Runner(
            model, self.trace.keep_alive_s, queue=deque([request]), last_used=self.loop.now
        )
        self._loaded[model.name] = runner
        self.rec.runtime_started(model.name, model.bytes)
        self.loop.at(self.loop.now + model.load_s, lambda: self._ready(runner))

    def _ready(self, runner: Runner) -> None:
        runner.state = RunnerState.READY
        self.rec.loaded()
        self._serve(runner)
        self._idle(runner)

    def _hand(self, runner: Runner, request: Request) -> None:
        runner.refs += 1
        runner.expiry += 1
        runner.queue.append(request)
        self._serve(runner)

    def _serve(self, runner: Runner) -> None:
        while (
            runner.state is RunnerState.READY
            and runner.running < runner.model.parallel
            and runner.queue
        ):
            request = runner.queue.popleft()
            runner.running += 1
            runner.last_used = self.loop.now
            self._started.add(request.id)
            self.rec.started(request)
            self.loop.at(self.loop.now + request.service_s, lambda r=request: self._end(runner, r))

    def _end(self, runner: Runner, request: Request) -> None:
        runner.running -= 1
        runner.last_used = self.loop.now
        self._release(runner)
        self._serve(runner)

    def _release(self, runner: Runner) -> None:
        runner.refs -= 1
        self._idle(runner)

    def _idle(self, runner: Runner) -> None:
        """Unload a runner left with no requests, now or after its keep-alive."""
        if runner.refs > 0 or runner.state is not RunnerState.READY:
            return
        if runner.keep_alive_s <= 0:
            self._unload(runner)
            return
        runner.expiry += 1
        generation = runner.expiry
        self.loop.at(self.loop.now + runner.keep_alive_s, lambda: self._expire(runner, generation))

    def _expire(self, runner: Runner, generation: int) -> None:
        if runner.expiry == generation and runner.refs == 0 and runner.state is RunnerState.READY:
            self._unload(runner)

    def _unload(self, runner: Runner) -> None:
        runner.state = RunnerState.UNLOADING
        del self._loaded[runner.model.name]
        self._unloading.append(runner)
        self.loop.at(self.loop.now + runner.model.unload_s, lambda: self._unloaded(runner))

    def _unloaded(self, runner: Runner) -> None:
        self._unloading.remove(runner)
        self.rec.runtime_exited(runner.model.name)
        self._blocked = False
        self._pump()

    def _deadline(self, request: Request) -> None:
        """The client gives up on a request that has not started."""
        if request.id in self._started:
            return
        self._gone.add(request.id)
        self.rec.timed_out(request)
        if request in self._pending:
            self._pending.remove(request)
            return
        for runner in [*self._loaded.values(), *self._unloading]:
            if request in runner.queue:
                runner.queue.remove(request)
                self._release(runner)
                return


def ollama_like(trace: Trace, seed: int = 0) -> Result:
    """OLLAMA_MAX_LOADED_MODELS = what the budget fits; OLLAMA_NUM_PARALLEL = the models' slots."""
    return FifoSim(trace, Victims.OLLAMA, max_loaded=_fits(trace), seed=seed).run()


def lru(trace: Trace) -> Result:
    return FifoSim(trace, Victims.LRU, max_loaded=len(trace.models)).run()


def _fits(trace: Trace) -> int:
    return trace.budget // max(m.bytes for m in trace.models)


def min_loads(order: Sequence[str], capacity: int) -> int:
    """Belady's MIN: the fewest loads that serve ``order`` holding ``capacity`` models."""
    next_use: list[int] = [0] * len(order)
    seen: dict[str, int] = {}
    for i in range(len(order) - 1, -1, -1):
        next_use[i] = seen.get(order[i], len(order))
        seen[order[i]] = i
    resident: dict[str, int] = {}  # model → index of its next use
    loads = 0
    for i, model in enumerate(order):
        if model not in resident:
            loads += 1
            if len(resident) >= capacity:
                del resident[max(resident, key=lambda m: resident[m])]
        resident[model] = next_use[i]
    return loads


def capacity(trace: Trace) -> int:
    """How many models the budget holds; MIN assumes they are all one size."""
    sizes = {m.bytes for m in trace.models}
    if len(sizes) != 1:
        raise ValueError("MIN here is exact only for models of one size")
    return _fits(trace)
