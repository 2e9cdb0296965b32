"""The one protocol every kind of runtime implements, and what passes through it.

The lifecycle decides *when* a model loads, where it goes and what leaves to
make room; a :class:`Runtime` says *how* for its kind: what the model needs
on a device (:meth:`Runtime.sizing`), the supervisor that brings it up and
watches it (:meth:`Runtime.supervise`), where it then serves
(:meth:`Runtime.handle`), and which of its runtimes survived a restart of moc
(:meth:`Runtime.survivors`). Nothing outside ``backends/`` asks which kind a
model is.

Adding a runtime is one new module in ``backends/`` with a class that has
these methods, plus one line in :func:`moc.backends.registry.build_runtimes`
(and the kind's name in ``models.spec.SUPPORTED_BACKENDS`` with the spec
fields it does not use).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from moc.backends.record import RuntimeRecord
from moc.backends.supervisor import Hooks, Supervisor
from moc.devices.probe import DeviceInfo
from moc.models.catalog import Sizing
from moc.models.served import ServedAdapter
from moc.models.spec import ModelSpec

Placement = Callable[[], DeviceInfo]


@dataclass(frozen=True)
class Handle:
    """Where a ready model serves."""

    name: str
    base_url: str  # the OpenAI-compatible base, ending in /v1
    device: str | None  # None for a remote server
    served_name: str  # the model's name at the server
    api_key: str | None = None
    # The adapters its runtime loaded, in the ids it gave them: a registry
    # adapter by name, one of the model's configuration (always applied) as
    # None. Each request says the scale of every one (all named: llama.cpp
    # reuses a prompt cached under another adapter when a request names none).
    lora: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class Survivor:
    """A runtime still serving from before a restart of moc, to be taken over:
    the lifecycle reserves ``sizing`` on ``device``, makes a supervisor with
    :meth:`Runtime.supervise` and hands it to ``take_over``."""

    model: str
    device: str
    sizing: Sizing
    take_over: Callable[[Supervisor], None]


@dataclass
class Recovered:
    survivors: list[Survivor] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # left running, not adoptable: stopped
    gone: list[str] = field(default_factory=list)  # recorded, but no longer running


class Runtime(Protocol):
    kind: str  # the ``backend`` value of the specs it runs
    managed: bool  # moc places it on a device and holds its memory (False: a remote server)
    # Its memory is held by a process that is not moc's (Ollama's server): the
    # monitor counts the reservation as seen in use instead of twice.
    held_by_others: bool
    # The files an adapter from the registry must have for this runtime to
    # serve it (empty: it serves none).
    adapter_files: frozenset[str]
    # Each request names the adapter to apply in its body (llama.cpp's "lora"
    # list); otherwise a request names its adapter as its model (vLLM).
    lora_in_request: bool

    async def check(self, spec: ModelSpec) -> str | None:
        """What is wrong with the model as declared (a missing file), or None."""
        ...

    def with_adapters(self, spec: ModelSpec, adapters: Sequence[ServedAdapter]) -> ModelSpec:
        """``spec`` as it must start to serve ``adapters`` (verified folders)
        beside the model."""
        ...

    async def add_adapter(self, handle: Handle, adapter: ServedAdapter) -> bool:
        """Load ``adapter`` into the running server; False if this runtime
        cannot, and must be started again with it."""
        ...

    async def sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing:
        """What the model needs on ``device``; raises LoadFailed when its
        file or its server cannot tell."""
        ...

    def known_sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing | None:
        """What the model needs on ``device`` if that is known without reading a
        file or asking a server (for the scheduler's guesses); else None."""
        ...

    def supervise(self, spec: ModelSpec, device: Placement, hooks: Hooks) -> Supervisor:
        """A new supervisor for the model, not started. ``device()`` is where
        the model is placed, read at each start: a model unloaded and loaded
        again may be placed on another device, with the same supervisor."""
        ...

    def handle(self, spec: ModelSpec, supervisor: Supervisor | None, device: str | None) -> Handle:
        """Where the model serves: for a managed runtime, once ``supervisor`` is ready."""
        ...

    def fingerprint(self, spec: ModelSpec) -> str:
        """What must be the same for a runtime left running to be taken over."""
        ...

    async def survivors(
        self,
        specs: Sequence[ModelSpec],
        records: Sequence[RuntimeRecord],
        devices: Sequence[DeviceInfo],
    ) -> Recovered:
        """Which of ``specs``' runtimes still serve from before a restart of moc;
        runtimes in ``records`` that cannot be taken over are stopped."""
        ...


class RuntimeDefaults:
    """The protocol's steps that most runtimes do alike; a runtime inherits
    these and overrides what it does differently."""

    adapter_files: frozenset[str] = frozenset()
    lora_in_request = False

    def with_adapters(self, spec: ModelSpec, adapters: Sequence[ServedAdapter]) -> ModelSpec:
        return spec

    async def add_adapter(self, handle: Handle, adapter: ServedAdapter) -> bool:
        return False

    async def check(self, spec: ModelSpec) -> str | None:
        return None  # nothing to look at before a load (a server asked at load time)

    def known_sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing | None:
        return None

    async def survivors(
        self,
        specs: Sequence[ModelSpec],
        records: Sequence[RuntimeRecord],
        devices: Sequence[DeviceInfo],
    ) -> Recovered:
        return Recovered()  # nothing of its kind outlives moc
