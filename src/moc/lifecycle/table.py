"""The table of models: one :class:`Slot` per catalog model, the ledger
entries of models (``model:<name>``), and the read-only views of both.

Ownership: the table owns the slots and the models' ledger entries; it runs on
the event loop. :meth:`ModelTable.reserve` is the one place a model's memory
is reserved — a load, and a runtime taken over after a restart, both come
through it — and it runs in the caller's synchronous step, with no ``await``
between the ledger read that chose the device and the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from moc.artifacts.adapters import AdapterCatalog
from moc.backends.eligible import eligible_devices
from moc.backends.registry import Runtimes
from moc.backends.runtime import Handle
from moc.backends.state import State
from moc.clock import Clock
from moc.devices.probe import DeviceInfo
from moc.errors import LoadFailed, ModelNotFound
from moc.ledger import Claim, Entry, EntryKind, Ledger
from moc.lifecycle import policy
from moc.lifecycle.slot import ModelView, Slot, view_of
from moc.models.catalog import Catalog, Sizing
from moc.models.gguf_facts import GgufError, GgufFacts
from moc.models.spec import ModelSpec
from moc.telemetry.metrics import Metrics


class ModelTable:
    def __init__(
        self,
        catalog: Catalog,
        runtimes: Runtimes,
        ledger: Ledger,
        devices: list[DeviceInfo],
        clock: Clock,
        metrics: Metrics,
        on_more_free: Callable[[], None],
    ) -> None:
        self.catalog = catalog
        self.runtimes = runtimes
        self.ledger = ledger
        self.devices = {d.id: d for d in devices}
        self._clock = clock
        self._metrics = metrics
        self._on_more_free = on_more_free
        self._slots = {s.name: Slot(s, runtimes.of(s)) for s in catalog.specs()}
        self.adapters: AdapterCatalog | None = None  # the registry's, when moc has one
        self.aliases: dict[str, str] = {}  # agent map: name → "model" or "model:adapter"
        self._changed = asyncio.Event()
        self._listeners: list[Callable[[], None]] = []
        for spec in catalog.specs():
            metrics.model_status.labels(spec.name, State.STOPPED).set(1)

    # --- reading, for the transports ------------------------------------------------
    def view(self, name: str) -> ModelView:
        """The model as it is now; raises ModelNotFound with the known names."""
        return view_of(self.slot(name), self._clock.now())

    def views(self) -> list[ModelView]:
        now = self._clock.now()
        return [view_of(slot, now) for slot in self._slots.values()]

    def taken_names(self) -> set[str]:
        """What requests already call something: models, their configured
        adapters and the agent map's aliases (a registry artifact may take none)."""
        names = {spec.name for spec in self.catalog.specs()}
        names |= {a for spec in self.catalog.specs() for a in spec.adapter_names()}
        return names | set(self.aliases)

    def knows(self, name: str) -> bool:
        """A model's name, or an adapter's."""
        try:
            self.resolve(name)
        except ModelNotFound:
            return False
        return True

    def resolve(self, name: str) -> tuple[str, str]:
        """(model, name to send its backend): a model, a vLLM adapter of one,
        or a registry adapter (``adapter`` or ``base:adapter``) of a model
        whose runtime applies it per request, or an alias of the agent map for
        one of these; raises ModelNotFound."""
        name = self.aliases.get(name, name)
        try:
            return self.catalog.resolve(name)
        except ModelNotFound:
            adapter = self.adapters.lookup(name) if self.adapters is not None else None
            if adapter is None or adapter.manifest.base is None:
                raise
            return adapter.manifest.base, adapter.name

    async def file_facts(self, name: str) -> GgufFacts | None:
        """The model file's metadata, or None (no file, or not a GGUF file)."""
        spec = self.slot(name).spec
        if spec.path is None:
            return None
        try:
            return (await self.catalog.facts_async(spec))[1]
        except GgufError:
            return None

    async def sizing(self, name: str) -> Sizing:
        """What the model needs on the device it uses (or would use); raises
        LoadFailed or ModelFileInvalid when its file or its server cannot tell."""
        slot = self.slot(name)
        device = slot.device or self.eligible(slot.spec)[0]
        return await slot.runtime.sizing(slot.spec, self.devices[device])

    def claims(self) -> list[Claim]:
        """Model reservations with the process that uses them (for the monitor).

        A runtime whose memory is held by a process that is not moc's (a model
        in Ollama) claims with no pid, so the monitor counts its reservation
        among the memory it sees in use instead of counting it twice; what
        Ollama holds for models moc did not load stays observed use.
        """
        found = []
        for slot in self._slots.values():
            sup = slot.supervisor
            if slot.device is None or sup is None:
                continue
            entry = self.ledger.entry(slot.spec.entry_id)
            if sup.process is not None:  # its use is its own, also while it stops
                nbytes = entry.bytes if entry else 0
                found.append(Claim(slot.spec.entry_id, slot.device, sup.process.pid, nbytes))
            elif entry is not None and slot.runtime.held_by_others:
                found.append(Claim(slot.spec.entry_id, slot.device, None, entry.bytes))
        return found

    # --- the lifecycle's own reading ------------------------------------------------
    def slot(self, name: str) -> Slot:
        self.catalog.spec(name)  # raises ModelNotFound with the known names
        return self._slots[name]

    def slots(self) -> list[Slot]:
        return list(self._slots.values())

    def eligible(self, spec: ModelSpec) -> list[str]:
        return [d.id for d in eligible_devices(spec, list(self.devices.values()))]

    def rooms(self, eligible: list[str]) -> list[policy.Room]:
        ledger = self.ledger
        return [policy.Room(d, ledger.capacity(d), ledger.free(d)) for d in eligible]

    def residents(self) -> list[policy.Resident]:
        now = self._clock.now()
        found = []
        for slot in self._slots.values():
            if slot.device is None or self.ledger.entry(slot.spec.entry_id) is None:
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

    def other_loading(self, slot: Slot) -> bool:
        """Is another model loading where this one could go (or not yet placed)?"""
        try:
            eligible = self.eligible(slot.spec)
        except LoadFailed:
            return False
        return any(
            other.loading is not None and (other.device is None or other.device in eligible)
            for other in self._slots.values()
            if other is not slot
        )

    # --- memory -----------------------------------------------------------------------
    def reserve(self, slot: Slot, device: str, sizing: Sizing) -> None:
        """Hold the model's memory on ``device``; the one place that does."""
        self.ledger.reserve(Entry(slot.spec.entry_id, device, sizing.bytes, EntryKind.MODEL))
        slot.device, slot.sizing, slot.reserved, slot.measured = device, sizing, sizing.bytes, None
        self._metrics.model_estimated_bytes.labels(slot.spec.name).set(sizing.estimate.total)

    def release(self, slot: Slot) -> None:
        if self.ledger.release(slot.spec.entry_id) is not None:
            slot.reserved = 0
            self._metrics.model_measured_bytes.labels(slot.spec.name).set(0)
            self._on_more_free()

    def resize(self, slot: Slot, nbytes: int) -> None:
        """Charge a model what it was measured using (when no ``memory`` is configured)."""
        if self.ledger.entry(slot.spec.entry_id) is not None:
            self.ledger.resize(slot.spec.entry_id, nbytes)
            slot.reserved = nbytes
            self._on_more_free()

    # --- waiting and telling ---------------------------------------------------------
    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a model's state changes or it finishes a request."""
        self._listeners.append(listener)

    async def changed(self) -> None:
        """Until the next :meth:`wake` (a state change, a request's end, a drain mark)."""
        await self._changed.wait()

    def wake(self) -> None:
        """Wake the loads waiting for room; the listeners are not told."""
        self._changed.set()
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """A model's state changed: wake waiting loads, and tell the listeners."""
        self.wake()
        for listener in self._listeners:
            listener()

    def handle(self, slot: Slot) -> Handle:
        handle = slot.runtime.handle(slot.spec, slot.supervisor, slot.device)
        if not slot.lora or not slot.runtime.lora_in_request:
            return handle
        configured: tuple[str | None, ...] = (None,) * len(slot.spec.adapters)  # started first
        return replace(handle, lora=configured + tuple(name for name, _ in slot.lora))
