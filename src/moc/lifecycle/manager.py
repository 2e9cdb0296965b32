"""The table of models and their runtimes: load, unload, evict, idle unload.

Ownership: :class:`ModelManager` owns the table (one :class:`Slot` per
catalog model) and the ledger entries of models (``model:<name>``). It runs on
the event loop; every decision that admits memory — placement, choosing
victims, reserving — happens in one synchronous step with no ``await``
between reading the ledger and writing it, so two loads cannot both take the
same free bytes. Processes belong to each slot's
:class:`~moc.backends.supervisor.Supervisor`.

Guarantees:

- a model that is ready is handed out at once, whatever else is loading;
- two callers asking for the same model share one load;
- a model that can never fit fails at once (``exceeds_capacity``) and evicts
  nothing; pinned models and models with requests in flight are never
  evicted; moc waits for requests to drain only when nothing else frees room;
- a new runtime starts only after the runtimes evicted for it have exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx

from moc.backends.launch import Launch
from moc.backends.llamacpp import launch as llamacpp_launch
from moc.backends.ollama import OllamaApi, OllamaError, OllamaSupervisor
from moc.backends.process import RuntimeProcess, free_port, process_matches
from moc.backends.state import HOLDS_MEMORY, State
from moc.backends.supervisor import Change, ProcessSupervisor, SupervisionPolicy, Supervisor
from moc.backends.systemd import Systemd
from moc.backends.vllm import launch as vllm_launch
from moc.clock import Clock
from moc.config import Config
from moc.devices.probe import DeviceInfo
from moc.errors import (
    ExceedsCapacity,
    InsufficientMemory,
    LoadFailed,
    MocError,
    ModelDegraded,
    ModelNotFound,
    ShuttingDown,
    StoreUnavailable,
)
from moc.ledger import Claim, Entry, EntryKind, Ledger
from moc.lifecycle import policy
from moc.lifecycle.records import ModelStore, RuntimeRecord
from moc.models.catalog import Catalog, Sizing
from moc.models.gguf_facts import GgufError, GgufFacts
from moc.models.spec import ModelSpec
from moc.scheduler.waiting import ModelFacts
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics
from moc.units import format_size

log = logging.getLogger(__name__)

Measure = Callable[[int, str], Awaitable[int | None]]
OOM_GROWTH = 1.25  # after an out-of-memory failure, plan for this much more
MEASURE_SLACK = 1 << 20  # ignore changes in measured use smaller than 1 MiB


@dataclass(frozen=True)
class Handle:
    """Where a ready model serves."""

    name: str
    base_url: str  # the OpenAI-compatible base, ending in /v1
    device: str | None  # None for a remote server
    served_name: str  # the model's name at the server
    api_key: str | None = None


@dataclass
class Slot:
    spec: ModelSpec
    supervisor: Supervisor | None = None
    device: str | None = None
    sizing: Sizing | None = None
    reserved: int = 0
    measured: int | None = None  # the most this run of the runtime was seen using
    in_flight: int = 0
    draining: bool = False  # a load waits for its requests to finish, to evict it
    last_used: float = 0.0
    load_s: float | None = None  # the last cold load, start to ready
    loading: asyncio.Task[Handle] | None = None
    stopping: asyncio.Task[None] | None = None

    @property
    def state(self) -> State:
        return self.supervisor.state if self.supervisor else State.STOPPED


def spec_hash(spec: ModelSpec, server: tuple[str, ...]) -> str:
    text = spec.model_dump_json() + "\0" + "\0".join(server)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ModelManager:
    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        ledger: Ledger,
        devices: list[DeviceInfo],
        store: ModelStore,
        clock: Clock,
        metrics: Metrics,
        measure: Measure,
        on_more_free: Callable[[], None],
        server: tuple[str, ...],
    ) -> None:
        self._config = config
        self._catalog = catalog
        self._ledger = ledger
        self._devices = {d.id: d for d in devices}
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._measure = measure
        self._on_more_free = on_more_free
        self._server = server
        self._systemd = Systemd()
        self._slots = {spec.name: Slot(spec) for spec in catalog.specs()}
        self._changed = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []
        self._http = httpx.AsyncClient(trust_env=False)
        rt = config.runtimes
        self._policy = SupervisionPolicy(
            ready_timeout_s=rt.llamacpp.ready_timeout_s,
            stop_grace_s=rt.llamacpp.stop_grace_s,
            restart_limit=rt.restart_limit,
            backoff_s=rt.restart_backoff_s,
            backoff_max_s=rt.restart_backoff_max_s,
        )
        self._logs = config.data_dir / "logs"
        self._closing = False
        self._sweeper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        for spec in catalog.specs():
            self._metrics.model_status.labels(spec.name, State.STOPPED).set(1)

    # --- reading ---------------------------------------------------------------
    def slot(self, name: str) -> Slot:
        self._catalog.spec(name)  # raises ModelNotFound with the known names
        return self._slots[name]

    def knows(self, name: str) -> bool:
        """A model's name, or a vLLM adapter's."""
        try:
            self._catalog.resolve(name)
        except ModelNotFound:
            return False
        return True

    def resolve(self, name: str) -> tuple[str, str]:
        """(model, name to send its backend): a model, or a vLLM adapter of one;
        raises ModelNotFound."""
        return self._catalog.resolve(name)

    def slots(self) -> list[Slot]:
        return list(self._slots.values())

    def claims(self) -> list[Claim]:
        """Model reservations with the process that uses them (for the monitor).

        A model in an Ollama server has no process of moc's: its claim names
        none, so the monitor counts its reservation among the memory it sees
        in use instead of counting it twice; what Ollama holds for models moc
        did not load stays observed use.
        """
        found = []
        for slot in self._slots.values():
            sup = slot.supervisor
            entry = self._ledger.entry(slot.spec.entry_id)
            if slot.device is None or sup is None:
                continue
            if sup.process is not None:  # its use is its own, also while it stops
                nbytes = entry.bytes if entry else 0
                found.append(Claim(slot.spec.entry_id, slot.device, sup.process.pid, nbytes))
            elif entry is not None and slot.spec.backend == "ollama":
                found.append(Claim(slot.spec.entry_id, slot.device, None, entry.bytes))

        return found

    def scheduling_facts(self, name: str) -> ModelFacts:
        """What the scheduler's waiting room needs to know about a model now."""
        slot = self._slots[name]
        spec = slot.spec
        if spec.remote:
            return ModelFacts(spec.parallel, warm=True, accepting=True, fits_cold=False)
        state = slot.state
        stopping = state is State.STOPPING
        warm = slot.loading is not None or state in (State.READY, State.STARTING, State.BACKOFF)
        return ModelFacts(
            spec.parallel,
            warm=warm and not stopping,
            accepting=not (slot.draining or stopping),
            fits_cold=not warm and self._fits_now(slot),
            other_loading=not warm and self._other_loading(slot),
        )

    def _other_loading(self, slot: Slot) -> bool:
        """Is another model loading where this one could go (or not yet placed)?"""
        try:
            eligible = self._eligible(slot.spec)
        except LoadFailed:
            return False
        return any(
            other.loading is not None and (other.device is None or other.device in eligible)
            for other in self._slots.values()
            if other is not slot
        )

    def _fits_now(self, slot: Slot) -> bool:
        """Would the model load without evicting anything? False when unsure."""
        cached = self._catalog.cached(slot.spec)
        if cached is None:
            return False
        try:
            eligible = self._eligible(slot.spec)
        except LoadFailed:
            return True  # it fails at once; holding it back would only delay the error
        kind = self._devices[eligible[0]].kind
        need = self._catalog.sizing(slot.spec, *cached, kind).bytes
        decision = policy.place(need, self._rooms(eligible), self._residents())
        return isinstance(decision, policy.Fits)

    async def file_facts(self, name: str) -> GgufFacts | None:
        """The model file's metadata, or None (remote model, unreadable file)."""
        spec = self.slot(name).spec
        if spec.path is None:
            return None
        try:
            return (await self._catalog.facts_async(spec))[1]
        except GgufError:
            return None

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a model's state changes or it finishes a request."""
        self._listeners.append(listener)

    async def sizing(self, name: str) -> Sizing:
        """What the model needs on the device it would use; raises GgufError or
        OllamaError when its file or its server cannot tell."""
        slot = self.slot(name)
        return await self._sizing(slot.spec, slot.device or self._eligible(slot.spec)[0])

    async def _sizing(self, spec: ModelSpec, device: str) -> Sizing:
        kind = self._devices[device].kind
        if spec.backend == "vllm":
            return self._catalog.sizing_preallocated(spec, self._devices[device].total, kind)
        if spec.backend == "ollama":
            digest, size = await self._ollama(spec).file(self._tag(spec))
            return self._catalog.sizing_by_file_size(spec, digest, size, kind)
        fp, facts = await self._catalog.facts_async(spec)
        return self._catalog.sizing(spec, fp, facts, kind)

    def unload_in(self, slot: Slot) -> float | None:
        """Seconds until an idle unload, if one is due (None: never or busy)."""
        if slot.state is not State.READY or slot.spec.keep_alive < 0 or slot.in_flight:
            return None
        return max(0.0, slot.last_used + slot.spec.keep_alive - self._clock.now())

    # --- the public operations ------------------------------------------------------
    async def ensure_loaded(self, name: str, *, explicit: bool = False) -> Handle:
        """The model ready to serve, loading it first if needed.

        ``explicit`` is an operator's load: it also restarts a degraded model.
        """
        slot = self.slot(name)
        if slot.spec.remote:
            slot.last_used = self._clock.now()
            return self._handle(slot)
        while True:
            if self._closing:
                raise ShuttingDown("moc is shutting down; no model is loaded now")
            sup = slot.supervisor
            if sup is not None and sup.state is State.READY:
                slot.last_used = self._clock.now()
                return self._handle(slot)
            if slot.loading is not None:
                await asyncio.shield(slot.loading)
                continue
            if sup is not None and sup.state in (State.STOPPING, State.STARTING, State.BACKOFF):
                await sup.changed()
                continue
            if sup is not None and sup.state is State.DEGRADED and not explicit:
                raise ModelDegraded(
                    f"model {name} failed {sup.failures} times in a row and is not restarted "
                    f"automatically; load it explicitly (moc load {name}) after fixing: "
                    f"{sup.last_error}",
                    model=name,
                )
            slot.loading = asyncio.create_task(self._load(slot), name=f"load {name}")
            slot.loading.add_done_callback(_retrieve)

    async def unload(self, name: str, reason: str = "requested") -> bool:
        """Stop the model's runtime; False if it was not loaded."""
        slot = self.slot(name)
        if slot.spec.remote:
            return False
        if slot.loading is not None:
            with contextlib.suppress(MocError):
                await asyncio.shield(slot.loading)
        if slot.supervisor is None or slot.state is State.STOPPED:
            return False
        await self._stop(slot, reason)
        return True

    async def hold(self, name: str) -> Handle:
        """The model, loaded, held for one request: not evicted until :meth:`release`."""
        handle = await self.ensure_loaded(name)
        self._slots[name].in_flight += 1
        return handle

    def release(self, name: str) -> None:
        slot = self._slots[name]
        slot.in_flight -= 1
        slot.last_used = self._clock.now()
        # A load waiting for requests to drain looks again; the scheduler need
        # not: it counts its own running requests, and nothing it decides on
        # changed (the request's end already ran its step).
        self._wake_waiters()

    @contextlib.asynccontextmanager
    async def use(self, name: str) -> AsyncIterator[Handle]:
        """:meth:`hold` for the length of a block."""
        handle = await self.hold(name)
        try:
            yield handle
        finally:
            self.release(name)

    async def after_failure(self, name: str) -> Handle:
        """The model serving again after its backend failed to answer a request.

        A runtime that died is noticed by its supervisor within moments; this
        waits for that (up to a second), then for the restart. A runtime still
        alive is handed back as it is: the failure was the connection's.
        """
        slot = self._slots[name]
        sup = slot.supervisor
        if sup is not None and sup.process is not None and sup.state is State.READY:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sup.process.wait(), 1.0)
                if sup.state is State.READY:  # exited; the watcher moves it on
                    await asyncio.wait_for(sup.changed(), 1.0)
        return await self.ensure_loaded(name)

    # --- loading -------------------------------------------------------------------
    async def _load(self, slot: Slot) -> Handle:
        name = slot.spec.name
        started = time.monotonic()
        try:
            eligible = self._eligible(slot.spec)
            try:
                sizing = await self._sizing(slot.spec, eligible[0])
            except (GgufError, OllamaError) as exc:
                self._metrics.model_loads.labels(name, "failed").inc()
                raise LoadFailed(f"model {name}: {exc}", model=name) from exc
            victims = await self._make_room(slot, eligible, sizing)
            if victims:
                await asyncio.gather(*(self._stop(v, "evicted for " + name) for v in victims))
            sup = slot.supervisor or self._new_supervisor(slot)
            slot.supervisor = sup
            try:
                await sup.start("load")
            except LoadFailed:
                self._metrics.model_loads.labels(name, "failed").inc()
                raise
            slot.load_s = time.monotonic() - started
            slot.last_used = self._clock.now()
            self._metrics.model_loads.labels(name, "loaded").inc()
            self._metrics.model_load_seconds.labels(name).observe(slot.load_s)
            await self._measure_now(slot)
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
            return self._handle(slot)
        finally:
            slot.loading = None
            self._notify()

    async def _make_room(self, slot: Slot, eligible: list[str], sizing: Sizing) -> list[Slot]:
        """Reserve the model's memory, evicting or waiting as the policy says.

        Returns the slots to stop before the runtime may start.
        """
        spec = slot.spec
        need = sizing.bytes
        deadline = time.monotonic() + self._policy.ready_timeout_s
        drained: tuple[str, ...] = ()
        try:
            while True:
                decision = policy.place(need, self._rooms(eligible), self._residents())
                match decision:
                    case policy.Fits(device):
                        self._reserve(slot, device, sizing)
                        return []
                    case policy.Evict(device, names):
                        victims = [self._slots[n] for n in names]
                        for victim in victims:
                            assert victim.supervisor is not None
                            victim.supervisor.mark_stopping(f"evicted for {spec.name}")
                            self._release(victim)
                            self._metrics.model_evictions.labels(victim.spec.name, "memory").inc()
                        self._reserve(slot, device, sizing)
                        event(log, logging.INFO, "evicting", model=spec.name, victims=list(names))
                        return victims
                    case policy.TooLarge(capacity):
                        raise ExceedsCapacity(
                            f"model {spec.name} needs {format_size(need)} ({sizing.source}) but "
                            f"the largest device it may use holds {format_size(capacity)}; it can "
                            f"never fit (lower ctx or parallel, or use a smaller quantisation)",
                            model=spec.name,
                            bytes_needed=need,
                            capacity=capacity,
                        )
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
                            await asyncio.wait_for(
                                self._changed.wait(), deadline - time.monotonic()
                            )
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

    def _drain(self, names: tuple[str, ...], on: bool) -> None:
        for name in names:
            self._slots[name].draining = on
        if names:
            self._notify()

    def _eligible(self, spec: ModelSpec) -> list[str]:
        if spec.device is not None:
            if spec.device not in self._devices:
                raise LoadFailed(
                    f"model {spec.name}: device {spec.device!r} does not exist "
                    f"(devices: {', '.join(self._devices)})",
                    model=spec.name,
                )
            return [spec.device]
        gpus = [d.id for d in self._devices.values() if d.kind == "nvidia"]
        return gpus or list(self._devices)

    def _rooms(self, eligible: list[str]) -> list[policy.Room]:
        return [policy.Room(d, self._ledger.capacity(d), self._ledger.free(d)) for d in eligible]

    def _residents(self) -> list[policy.Resident]:
        now = self._clock.now()
        found = []
        for slot in self._slots.values():
            if slot.device is None or self._ledger.entry(slot.spec.entry_id) is None:
                continue
            found.append(
                policy.Resident(
                    name=slot.spec.name,
                    device=slot.device,
                    bytes=slot.reserved,
                    pinned=slot.spec.pinned,
                    busy=slot.in_flight > 0
                    or slot.loading is not None
                    or slot.state in (State.STARTING, State.STOPPING),
                    idle_s=max(0.0, now - slot.last_used),
                    reload_s=slot.load_s if slot.load_s is not None else 1.0,
                )
            )
        return found

    def _reserve(self, slot: Slot, device: str, sizing: Sizing) -> None:
        self._ledger.reserve(Entry(slot.spec.entry_id, device, sizing.bytes, EntryKind.MODEL))
        slot.device, slot.sizing, slot.reserved, slot.measured = device, sizing, sizing.bytes, None
        self._metrics.model_estimated_bytes.labels(slot.spec.name).set(sizing.estimate.total)

    def _release(self, slot: Slot) -> None:
        if self._ledger.release(slot.spec.entry_id) is not None:
            slot.reserved = 0
            self._metrics.model_measured_bytes.labels(slot.spec.name).set(0)
            self._on_more_free()

    def _ollama(self, spec: ModelSpec) -> OllamaApi:
        assert spec.url is not None
        return OllamaApi(spec.url, self._http)

    @staticmethod
    def _tag(spec: ModelSpec) -> str:
        return spec.served_name or spec.name

    def _new_supervisor(self, slot: Slot) -> Supervisor:
        if slot.spec.backend == "ollama":
            assert slot.device is not None
            return OllamaSupervisor(
                slot.spec.name,
                self._tag(slot.spec),
                self._ollama(slot.spec),
                self._devices[slot.device].kind,
                self._policy,
                on_change=self._on_change,
                on_usage=lambda used: self._note_measured(slot, used),
            )
        return self._new_process_supervisor(slot)

    def _new_process_supervisor(self, slot: Slot) -> ProcessSupervisor:
        name = slot.spec.name

        rt = self._config.runtimes

        def make_launch() -> Launch:
            assert slot.device is not None
            device = self._devices[slot.device]
            if slot.spec.backend == "vllm":
                launch = vllm_launch(slot.spec, device, free_port(), rt.vllm)
            else:
                launch = llamacpp_launch(slot.spec, device, free_port(), rt.llamacpp, self._server)
            return self._systemd.confine(launch, slot.spec)

        policy = self._policy
        if slot.spec.backend == "vllm":
            policy = replace(
                policy, ready_timeout_s=rt.vllm.ready_timeout_s, stop_grace_s=rt.vllm.stop_grace_s
            )
        return ProcessSupervisor(
            name,
            make_launch,
            self._logs / f"{name.replace('/', '_')}.log",
            self._http,
            policy,
            on_change=self._on_change,
            on_started=lambda sup: self._record(slot, sup),
            on_oom=self._on_oom,
        )

    def _handle(self, slot: Slot) -> Handle:
        spec = slot.spec
        if spec.remote:
            assert spec.url is not None
            key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
            return Handle(spec.name, spec.url.rstrip("/"), None, spec.served_name or spec.name, key)
        assert slot.supervisor is not None
        assert slot.device is not None
        served = self._tag(spec) if spec.backend == "ollama" else spec.name
        return Handle(spec.name, slot.supervisor.url + "/v1", slot.device, served)

    def _stop_soon(self, slot: Slot, reason: str) -> None:
        assert slot.supervisor is not None
        slot.supervisor.mark_stopping(reason)
        task = asyncio.create_task(self._stop(slot, reason), name=f"stop {slot.spec.name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- stopping ---------------------------------------------------------------------
    async def _stop(self, slot: Slot, reason: str) -> None:
        if slot.stopping is None:
            assert slot.supervisor is not None
            slot.stopping = asyncio.create_task(slot.supervisor.stop(reason))
        task = slot.stopping
        try:
            await asyncio.shield(task)
        finally:
            if slot.stopping is task and task.done():
                slot.stopping = None

    # --- what the supervisor and the monitor report -----------------------------------
    def _on_change(self, change: Change) -> None:
        slot = self._slots[change.model]
        status = self._metrics.model_status
        status.labels(change.model, change.old).set(0)
        status.labels(change.model, change.new).set(1)
        if change.new not in HOLDS_MEMORY:
            self._release(slot)
            with contextlib.suppress(StoreUnavailable):
                self._store.forget_runtime(change.model)
        if change.old is State.BACKOFF and change.new is State.STARTING:
            self._metrics.model_restarts.labels(change.model).inc()
        self._notify()

    def _record(self, slot: Slot, sup: ProcessSupervisor) -> None:
        assert sup.process is not None
        assert sup.port is not None
        assert slot.device is not None
        record = RuntimeRecord(
            slot.spec.name,
            sup.process.pid,
            sup.port,
            slot.device,
            spec_hash(slot.spec, self._server),
            self._clock.now(),
        )
        try:
            self._store.save_runtime(record)
        except StoreUnavailable as exc:
            event(
                log, logging.WARNING, "runtime not recorded", model=slot.spec.name, error=str(exc)
            )

    def _on_oom(self, model: str, lines: list[str]) -> None:
        slot = self._slots[model]
        self._metrics.model_ooms.labels(model).inc()
        if slot.sizing is None:
            return
        grown = int(max(slot.reserved, slot.measured or 0) * OOM_GROWTH)
        event(
            log,
            logging.WARNING,
            "runtime ran out of memory",
            model=model,
            line=lines[-1],
            plan_next=format_size(grown),
        )
        with contextlib.suppress(StoreUnavailable):
            self._store.save_measured(slot.sizing.key, grown, self._clock.now())

    def note_usage(self, usage: dict[str, int]) -> None:
        """Measured use per ledger entry, from the device monitor."""
        for slot in self._slots.values():
            used = usage.get(slot.spec.entry_id)
            if used is not None and used > 0 and slot.state is State.READY:
                self._note_measured(slot, used)

    async def _measure_now(self, slot: Slot) -> None:
        sup = slot.supervisor
        if sup is None or sup.process is None or slot.device is None:
            return
        used = await self._measure(sup.process.pid, slot.device)
        if used is not None and used > 0 and slot.state is State.READY:
            self._note_measured(slot, used)

    def _note_measured(self, slot: Slot, used: int) -> None:
        """Charge the model what it really uses, and remember it for next time."""
        if slot.measured is not None and used <= slot.measured + MEASURE_SLACK:
            return
        slot.measured = used
        self._metrics.model_measured_bytes.labels(slot.spec.name).set(used)
        if slot.spec.memory is None and self._ledger.entry(slot.spec.entry_id) is not None:
            self._ledger.resize(slot.spec.entry_id, used)
            slot.reserved = used
            self._on_more_free()
        if slot.sizing is not None:
            try:
                self._store.save_measured(slot.sizing.key, used, self._clock.now())
            except StoreUnavailable as exc:
                event(
                    log,
                    logging.WARNING,
                    "measurement not saved",
                    model=slot.spec.name,
                    error=str(exc),
                )

    # --- idle unload, preload, restart of moc -------------------------------------------
    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="idle models")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = self._clock.now()
            for slot in self._slots.values():
                keep = slot.spec.keep_alive
                if (
                    keep >= 0
                    and slot.state is State.READY
                    and slot.in_flight == 0
                    and slot.loading is None
                    and now - slot.last_used >= keep
                ):
                    self._metrics.model_evictions.labels(slot.spec.name, "idle").inc()
                    self._stop_soon(slot, f"idle for {keep:g} s")

    async def preload(self) -> None:
        names = [s.name for s in self._catalog.specs() if s.preload]
        results = await asyncio.gather(
            *(self.ensure_loaded(n, explicit=True) for n in names), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                event(log, logging.ERROR, "preload failed", model=name, error=str(result))

    async def recover(self) -> tuple[int, int]:
        """Adopt or stop the runtimes an earlier moc left running; (adopted, stopped)."""
        adopted = stopped = 0
        for record in self._store.runtimes():
            slot = self._slots.get(record.model)
            marker = f"--port {record.port}"
            if not process_matches(record.pid, marker):
                self._store.forget_runtime(record.model)
                continue
            process = RuntimeProcess.adopt(record.pid)
            if slot is not None and await self._adoptable(slot, record):
                sup = self._new_process_supervisor(slot)
                slot.supervisor = sup
                sup.adopt(process, record.port)
                slot.last_used = self._clock.now()
                adopted += 1
                await self._measure_now(slot)
                continue
            await process.stop(self._policy.stop_grace_s)
            self._store.forget_runtime(record.model)
            stopped += 1
            event(
                log,
                logging.INFO,
                "stopped a runtime left by an earlier moc",
                model=record.model,
                pid=record.pid,
            )
        by_server: dict[str, list[Slot]] = {}
        for slot in self._slots.values():
            if slot.spec.backend == "ollama" and slot.spec.url and slot.supervisor is None:
                by_server.setdefault(slot.spec.url, []).append(slot)
        for url, slots in by_server.items():  # one /api/ps per Ollama server
            try:
                resident = await OllamaApi(url, self._http).ps()
            except OllamaError:
                continue
            entries = {m.get("model"): m for m in resident} | {m.get("name"): m for m in resident}
            for slot in slots:
                entry = entries.get(self._tag(slot.spec))
                if entry is not None:
                    adopted += await self._adopt_from_ollama(slot, entry)
        return adopted, stopped

    async def _adopt_from_ollama(self, slot: Slot, entry: dict[str, Any]) -> int:
        """A model Ollama still holds from before (it was pinned with keep-alive
        forever): moc takes it back, with its memory, instead of losing track."""
        spec = slot.spec
        try:
            device = self._eligible(spec)[0]
            sizing = await self._sizing(spec, device)
        except (OllamaError, LoadFailed):
            return 0
        self._ledger.reserve(Entry(spec.entry_id, device, sizing.bytes, EntryKind.MODEL))
        slot.device, slot.sizing, slot.reserved = device, sizing, sizing.bytes
        sup = self._new_supervisor(slot)
        assert isinstance(sup, OllamaSupervisor)
        slot.supervisor = sup
        sup.adopt(entry)
        slot.last_used = self._clock.now()
        return 1

    async def _adoptable(self, slot: Slot, record: RuntimeRecord) -> bool:
        if record.spec_hash != spec_hash(slot.spec, self._server):
            return False
        if record.device not in self._devices:
            return False
        try:
            response = await self._http.get(f"http://127.0.0.1:{record.port}/health", timeout=2)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        try:
            fp, facts = await self._catalog.facts_async(slot.spec)
        except GgufError:
            return False
        kind = self._devices[record.device].kind
        sizing = self._catalog.sizing(slot.spec, fp, facts, kind)
        self._ledger.reserve(
            Entry(slot.spec.entry_id, record.device, sizing.bytes, EntryKind.MODEL)
        )
        slot.device, slot.sizing, slot.reserved = record.device, sizing, sizing.bytes
        return True

    async def close(self) -> None:
        """Stop every runtime (within the grace period each)."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for slot in self._slots.values():
            if slot.loading is not None:
                slot.loading.cancel()
        running = [s for s in self._slots.values() if s.supervisor and s.state is not State.STOPPED]
        await asyncio.gather(
            *(self._stop(s, "moc stopping") for s in running), return_exceptions=True
        )
        await self._http.aclose()

    # --- waiting -----------------------------------------------------------------------
    def _wake_waiters(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        """A model's state changed: wake waiting loads, and tell the listeners."""
        self._wake_waiters()
        for listener in self._listeners:
            listener()


def _retrieve(task: asyncio.Task[Handle]) -> None:
    if not task.cancelled():
        task.exception()  # awaited by callers; retrieved here so none is reported as lost
