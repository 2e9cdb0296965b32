"""Loading and making room: ``ensure_loaded``, ``unload``, ``hold``/``release``,
eviction, and stopping everything at the end.

Guarantees:

- a model that is ready is handed out at once, whatever else is loading;
- two callers asking for the same model share one load;
- a model that can never fit fails at once (``exceeds_capacity``) and evicts
  nothing; pinned models and models with requests in flight are never
  evicted; moc waits for requests to drain only when nothing else frees room;
- a new runtime starts only after the runtimes evicted for it have exited.

Every decision that admits memory — placement, choosing victims, reserving —
happens in one synchronous step with no ``await`` between reading the ledger
and writing it, so two loads cannot both take the same free bytes. The rest of
the reasoning is in design.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from moc.backends.record import RuntimeRecord
from moc.backends.runtime import Handle
from moc.backends.state import HOLDS_MEMORY, State
from moc.backends.supervisor import Change, Hooks, Supervisor
from moc.clock import Clock
from moc.devices.probe import DeviceInfo
from moc.errors import (
    ArtifactRefused,
    BackendUnavailable,
    ExceedsCapacity,
    InsufficientMemory,
    LoadFailed,
    MocError,
    ModelDegraded,
    ModelFileInvalid,
    ShuttingDown,
    StoreUnavailable,
)
from moc.lifecycle import policy
from moc.lifecycle.adapters import AdapterLoading
from moc.lifecycle.records import RuntimeStore
from moc.lifecycle.slot import Slot
from moc.lifecycle.steps import Step, next_step
from moc.lifecycle.table import ModelTable
from moc.lifecycle.usage import Usage
from moc.lifecycle.yielding import LOAD_PRIORITY, NoYielders, Yielders
from moc.models.advice import too_large_advice
from moc.models.catalog import Sizing
from moc.models.spec import ModelSpec
from moc.scheduler.waiting import ModelFacts
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics
from moc.units import format_size

log = logging.getLogger(__name__)

# After the last yield deadline, how long the lease service may take to revoke
# a holder that did not let go and the memory to show free.
RECLAIM_GRACE_S = 5.0

# A model declared by artifact, verified: its spec with the path its runtime reads.
Verify = Callable[[ModelSpec], Awaitable[ModelSpec]]


class Loader:
    def __init__(
        self,
        table: ModelTable,
        usage: Usage,
        records: RuntimeStore,
        clock: Clock,
        metrics: Metrics,
        drain_timeout_s: float,
        yielders: Yielders | None = None,
        verify: Verify | None = None,
    ) -> None:
        self._table = table
        self._verify = verify  # an artifact-declared model's files, checked before each load
        self._adapters = AdapterLoading(table, self.unload, self.release)
        self._yielders: Yielders = yielders or NoYielders()
        self._usage = usage
        self._records = records
        self._clock = clock
        self._metrics = metrics
        self._drain_timeout_s = drain_timeout_s
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()

    # --- the public operations ------------------------------------------------------
    async def ensure_loaded(self, name: str, *, explicit: bool = False) -> Handle:
        """The model ready to serve, loading it first if needed.

        ``explicit`` is an operator's load: it also restarts a degraded model.
        """
        slot = self._table.slot(name)
        if not slot.runtime.managed:
            slot.last_used = self._clock.now()
            return self._table.handle(slot)
        while True:
            step = next_step(
                slot.state, loading=slot.loading is not None, explicit=explicit,
                closing=self._closing,
            )  # fmt: skip
            match step:
                case Step.CLOSED:
                    raise ShuttingDown("moc is shutting down; no model is loaded now")
                case Step.SERVE:
                    slot.last_used = self._clock.now()
                    return self._table.handle(slot)
                case Step.JOIN:
                    assert slot.loading is not None
                    await asyncio.shield(slot.loading)
                case Step.WAIT:
                    assert slot.supervisor is not None
                    await slot.supervisor.changed()
                case Step.REFUSE:
                    sup = slot.supervisor
                    assert sup is not None
                    raise ModelDegraded(
                        f"model {name} failed {sup.failures} times in a row and is not "
                        f"restarted automatically; load it explicitly (moc load {name}) after "
                        f"fixing: {sup.last_error}",
                        model=name,
                    )
                case Step.LOAD:
                    slot.loading = asyncio.create_task(self._load(slot), name=f"load {name}")
                    slot.loading.add_done_callback(_retrieve)

    def resolve(self, name: str) -> tuple[str, str]:
        """(model, name to send its backend); raises ModelNotFound before anything queues."""
        return self._table.resolve(name)

    async def unload(self, name: str, reason: str = "requested") -> bool:
        """Stop the model's runtime; False if it was not loaded."""
        slot = self._table.slot(name)
        if not slot.runtime.managed:
            return False
        if slot.loading is not None:
            with contextlib.suppress(MocError):
                await asyncio.shield(slot.loading)
        if slot.supervisor is None or slot.state is State.STOPPED:
            return False
        await self.stop(slot, reason)
        return True

    async def hold(self, name: str, served: str | None = None) -> Handle:
        """The model, loaded, held for one request: not evicted until :meth:`release`.
        ``served``: the adapter the request names (from :meth:`resolve`)."""
        adapter = None
        if served is not None and served != name:
            adapter = await self._adapters.ready(name, served)
        handle = await self.ensure_loaded(name)
        slot = self._table.slot(name)
        if adapter is not None and adapter not in slot.lora:
            # It joined a load that began before the adapter was registered (or
            # the adapter changed meanwhile): never answer as the bare base.
            raise BackendUnavailable(
                f"model {name} is starting without adapter {served}, registered since; "
                "it is loaded with it next",
                model=name,
            )
        slot.in_flight += 1
        return handle

    def release(self, name: str) -> None:
        slot = self._table.slot(name)
        slot.in_flight -= 1
        slot.last_used = self._clock.now()
        # A load waiting for requests to drain looks again; the scheduler need
        # not: it counts its own running requests, and nothing it decides on
        # changed (the request's end already ran its step).
        self._table.wake()

    async def after_failure(self, name: str) -> Handle:
        """The model serving again after its backend failed to answer a request.

        A runtime that died is noticed by its supervisor within moments; this
        waits for that (up to a second), then for the restart. A runtime still
        alive is handed back as it is: the failure was the connection's.
        """
        sup = self._table.slot(name).supervisor
        if sup is not None and sup.process is not None and sup.state is State.READY:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sup.process.wait(), 1.0)
                if sup.state is State.READY:  # exited; the watcher moves it on
                    await asyncio.wait_for(sup.changed(), 1.0)
        return await self.ensure_loaded(name)

    def scheduling_facts(self, name: str) -> ModelFacts:
        """What the scheduler's waiting room needs to know about a model now."""
        slot = self._table.slot(name)
        spec = slot.spec
        if not slot.runtime.managed:
            return ModelFacts(spec.parallel, warm=True, accepting=True, fits_cold=False)
        state = slot.state
        stopping = state is State.STOPPING
        warm = slot.loading is not None or state in (State.READY, State.STARTING, State.BACKOFF)
        return ModelFacts(
            spec.parallel,
            warm=warm and not stopping,
            accepting=not (slot.draining or stopping),
            fits_cold=not warm and self._fits_now(slot),
            other_loading=not warm and self._table.other_loading(slot),
        )

    def _fits_now(self, slot: Slot) -> bool:
        """Would the model load without evicting anything? False when unsure."""
        try:
            eligible = self._table.eligible(slot.spec)
        except LoadFailed:
            return True  # it fails at once; holding it back would only delay the error
        sizing = slot.runtime.known_sizing(slot.spec, self._table.devices[eligible[0]])
        if sizing is None:
            return False
        decision = policy.place(sizing.bytes, self._table.rooms(eligible), self._table.residents())
        return isinstance(decision, policy.Fits)

    async def preload(self) -> None:
        names = [s.spec.name for s in self._table.slots() if s.spec.preload]
        results = await asyncio.gather(
            *(self.ensure_loaded(n, explicit=True) for n in names), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                event(log, logging.ERROR, "preload failed", model=name, error=str(result))

    # --- loading -------------------------------------------------------------------
    async def _load(self, slot: Slot) -> Handle:
        name = slot.spec.name
        started = time.monotonic()
        try:
            if slot.spec.artifact is not None:
                await self._verified(slot)  # before anything is reserved for it
            adapter_bytes = await self._adapters.start_with(slot)
            eligible = self._table.eligible(slot.spec)
            sizing = await slot.runtime.sizing(slot.spec, self._table.devices[eligible[0]])
            if adapter_bytes:  # held with the model: loading one never overcommits
                sizing = dataclasses.replace(sizing, bytes=sizing.bytes + adapter_bytes)
            victims = await self._make_room(slot, eligible, sizing)
            if victims:
                await asyncio.gather(*(self.stop(v, "evicted for " + name) for v in victims))
            sup = slot.supervisor or self._supervise(slot)
            slot.supervisor = sup
            await sup.start("load")
            slot.last_error = None
            slot.load_s = time.monotonic() - started
            slot.last_used = self._clock.now()
            self._metrics.model_loads.labels(name, "loaded").inc()
            self._metrics.model_load_seconds.labels(name).observe(slot.load_s)
            await self._usage.measure_now(slot)
            event(
                log,
                logging.INFO,
                "model loaded",
                model=name,
                device=slot.device,
                reserved=format_size(slot.reserved),
                planned=format_size(slot.sizing.bytes) if slot.sizing else None,
                planned_from=slot.sizing.source if slot.sizing else None,
                load_ms=round(slot.load_s * 1000, 1),
                runtime_start_ms=round((sup.runtime_start_s or 0.0) * 1000, 1),
            )
            return self._table.handle(slot)
        except MocError as exc:
            # Shown in the model's view until a load works: a load that failed
            # before any runtime started (a corrupt file) has nowhere else to say so.
            slot.last_error = exc.message
            if isinstance(exc, LoadFailed | ModelFileInvalid | ArtifactRefused):
                self._metrics.model_loads.labels(name, "failed").inc()
            raise
        finally:
            slot.loading = None
            self._table.notify()

    async def _verified(self, slot: Slot) -> None:
        """The artifact's files and signature checked (off the event loop), and
        the slot's spec pointed at them; a new version of the artifact gets a
        new supervisor, since a supervisor starts the spec it was made with."""
        if self._verify is None:
            raise ModelFileInvalid(
                f"model {slot.spec.name}: declared by artifact, but this moc has no registry",
                model=slot.spec.name,
            )
        spec = await self._verify(slot.spec)
        if spec.path != slot.spec.path:
            slot.spec = spec
            if slot.supervisor is not None and slot.state not in HOLDS_MEMORY:
                slot.supervisor = None

    async def _make_room(self, slot: Slot, eligible: list[str], sizing: Sizing) -> list[Slot]:
        """Reserve the model's memory, evicting or waiting as the policy says.

        Returns the slots to stop before the runtime may start.
        """
        table = self._table
        spec = slot.spec
        need = sizing.bytes
        deadline = time.monotonic() + self._drain_timeout_s
        drained: tuple[str, ...] = ()
        holds = contextlib.ExitStack()
        held: set[str] = set()
        reclaim_by: float | None = None
        try:
            while True:
                decision: policy.Decision | policy.Reclaim
                decision = policy.place(need, table.rooms(eligible), table.residents())
                if isinstance(decision, policy.Drain | policy.NoRoom):
                    decision = self._reclaim(need, eligible) or decision
                match decision:
                    case policy.Fits(device):
                        table.reserve(slot, device, sizing)
                        return []
                    case policy.Evict(device, names):
                        victims = [table.slot(n) for n in names]
                        for victim in victims:
                            assert victim.supervisor is not None
                            victim.supervisor.mark_stopping(f"evicted for {spec.name}")
                            table.release(victim)
                            self._metrics.model_evictions.labels(victim.spec.name, "memory").inc()
                        table.reserve(slot, device, sizing)
                        event(log, logging.INFO, "evicting", model=spec.name, victims=list(names))
                        return victims
                    case policy.TooLarge(capacity):
                        raise ExceedsCapacity(
                            f"model {spec.name} needs {format_size(need)} ({sizing.source}) but "
                            f"the largest device it may use holds {format_size(capacity)}; it can "
                            f"never fit: {too_large_advice(spec)}",
                            model=spec.name,
                            bytes_needed=need,
                            capacity=capacity,
                        )
                    case policy.Reclaim(device, ids):
                        if device not in held:  # what they free stays for this load
                            holds.enter_context(self._yielders.hold_back(device, LOAD_PRIORITY))
                            held.add(device)
                        within = self._yielders.request_yield(
                            list(ids), f"model {spec.name} needs the memory"
                        )
                        if reclaim_by is None:
                            reclaim_by = time.monotonic() + within + RECLAIM_GRACE_S
                        if time.monotonic() >= reclaim_by:
                            raise InsufficientMemory(
                                f"model {spec.name} needs {format_size(need)} on {device}; the "
                                f"learning jobs and leases asked to yield it ({', '.join(ids)}) "
                                "did not in time",
                                retry_after_s=5.0,
                                model=spec.name,
                                bytes_needed=need,
                            )
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(table.changed(), reclaim_by - time.monotonic())
                    case policy.Drain(device, names):
                        if time.monotonic() >= deadline:
                            raise InsufficientMemory(
                                f"model {spec.name} needs {format_size(need)} on {device}; models "
                                f"busy with requests ({', '.join(names)}) did not finish in time",
                                retry_after_s=5.0,
                                model=spec.name,
                                bytes_needed=need,
                            )
                        # The scheduler sends them nothing new meanwhile, so the wait ends.
                        # Marking them again only when the victims change matters: each
                        # mark wakes every waiting load, and two loads waiting for drains
                        # would otherwise wake each other without end.
                        if names != drained:
                            self._drain(drained, False)
                            drained = names
                            self._drain(drained, True)
                            event(
                                log, logging.INFO, "waiting for requests to drain", model=spec.name
                            )
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(table.changed(), deadline - time.monotonic())
                    case policy.NoRoom(device, free_if_all):
                        raise InsufficientMemory(
                            f"model {spec.name} needs {format_size(need)} but device {device} has "
                            f"{format_size(max(0, free_if_all))} even with every unpinned model "
                            f"unloaded: pinned models, leases and other processes hold the rest",
                            retry_after_s=5.0,
                            model=spec.name,
                            bytes_needed=need,
                            free_bytes=max(0, free_if_all),
                        )
        finally:
            self._drain(drained, False)
            holds.close()

    def _reclaim(self, need: int, eligible: list[str]) -> policy.Reclaim | None:
        table = self._table
        yielders = [
            policy.Yielder(lease.id, lease.device, lease.bytes)
            for lease in self._yielders.yieldable(eligible, LOAD_PRIORITY)
        ]
        if not yielders:
            return None
        return policy.reclaim(need, table.rooms(eligible), table.residents(), yielders)

    def _drain(self, names: tuple[str, ...], on: bool) -> None:
        for name in names:
            self._table.slot(name).draining = on
        if names:
            self._table.notify()

    # --- what a runtime's supervisor reports -----------------------------------------
    def _supervise(self, slot: Slot) -> Supervisor:
        def placed() -> DeviceInfo:
            assert slot.device is not None  # reserved before any start
            return self._table.devices[slot.device]

        hooks = Hooks(
            on_change=lambda change: self._on_change(slot, change),
            on_started=lambda pid, port: self._record(slot, pid, port),
            on_oom=lambda lines: self._usage.on_oom(slot, lines),
            on_usage=lambda used: self._usage.note_measured(slot, used),
        )
        return slot.runtime.supervise(slot.spec, placed, hooks)

    def take_over(self, slot: Slot, device: str, sizing: Sizing) -> Supervisor:
        """A supervisor for a runtime found serving after a restart of moc, with
        its memory reserved."""
        self._table.reserve(slot, device, sizing)
        slot.supervisor = self._supervise(slot)
        slot.last_used = self._clock.now()
        return slot.supervisor

    def _on_change(self, slot: Slot, change: Change) -> None:
        status = self._metrics.model_status
        status.labels(change.model, change.old).set(0)
        status.labels(change.model, change.new).set(1)
        if change.new not in HOLDS_MEMORY:
            self._table.release(slot)
            with contextlib.suppress(StoreUnavailable):
                self._records.forget_runtime(change.model)
        if change.old is State.BACKOFF and change.new is State.STARTING:
            self._metrics.model_restarts.labels(change.model).inc()
        self._table.notify()

    def _record(self, slot: Slot, pid: int, port: int) -> None:
        assert slot.device is not None
        record = RuntimeRecord(
            slot.spec.name,
            pid,
            port,
            slot.device,
            slot.runtime.fingerprint(slot.spec),
            self._clock.now(),
        )
        try:
            self._records.save_runtime(record)
        except StoreUnavailable as exc:
            event(
                log, logging.WARNING, "runtime not recorded", model=slot.spec.name, error=str(exc)
            )

    # --- stopping ---------------------------------------------------------------------
    def stop_soon(self, slot: Slot, reason: str) -> None:
        """Enter ``stopping`` now, in the caller's step; the stop runs in the background."""
        assert slot.supervisor is not None
        slot.supervisor.mark_stopping(reason)
        task = asyncio.create_task(self.stop(slot, reason), name=f"stop {slot.spec.name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self, slot: Slot, reason: str) -> None:
        """Stop the model's runtime; callers at once share one stop."""
        if slot.stopping is None:
            assert slot.supervisor is not None
            slot.stopping = asyncio.create_task(slot.supervisor.stop(reason))
        task = slot.stopping
        try:
            await asyncio.shield(task)
        finally:
            if slot.stopping is task and task.done():
                slot.stopping = None

    async def close(self) -> None:
        """Stop every runtime (within the grace period each)."""
        self._closing = True
        slots = self._table.slots()
        for slot in slots:
            if slot.loading is not None:
                slot.loading.cancel()
        running = [s for s in slots if s.supervisor and s.state is not State.STOPPED]
        await asyncio.gather(
            *(self.stop(s, "moc stopping") for s in running), return_exceptions=True
        )


def _retrieve(task: asyncio.Task[Handle]) -> None:
    if not task.cancelled():
        task.exception()  # awaited by callers; retrieved here so none is reported as lost
