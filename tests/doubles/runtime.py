"""A runtime that runs nothing and writes down every effect the lifecycle asks
of it, in order: the lifecycle's tests assert on that record (as llama-swap's
scheduler tests assert on recorded effects) instead of on processes.

It follows the :class:`moc.backends.runtime.Runtime` protocol; its
supervisor is the real state machine with the three runtime steps replaced.
"""

from __future__ import annotations

import asyncio

from moc.backends.context import RuntimeContext
from moc.backends.runtime import Handle, Placement, RuntimeDefaults
from moc.backends.supervisor import Hooks, Supervisor
from moc.devices.probe import DeviceInfo
from moc.errors import LoadFailed
from moc.models.catalog import Sizing
from moc.models.spec import ModelSpec


class RecordingSupervisor(Supervisor):
    def __init__(
        self, runtime: RecordingRuntime, spec: ModelSpec, device: Placement, hooks: Hooks
    ) -> None:
        super().__init__(spec.name, runtime.ctx.policy, hooks)
        self._runtime = runtime
        self._device = device
        self._gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @property
    def url(self) -> str:
        return f"http://recorded/{self.model}"

    async def _bring_up(self) -> None:
        runtime = self._runtime
        runtime.effects.append(f"start {self.model}")
        runtime.devices.append(f"{self.model} on {self._device().id}")
        await asyncio.sleep(runtime.start_s)
        if self.model in runtime.failing:
            raise self._failure("would not start (as asked)")
        runtime.effects.append(f"ready {self.model}")

    async def _until_down(self) -> str:
        return await self._gone

    async def _bring_down(self) -> None:
        self._runtime.effects.append(f"stop {self.model}")
        await asyncio.sleep(self._runtime.stop_s)
        self._runtime.effects.append(f"stopped {self.model}")

    def crash(self) -> None:
        self._gone.set_result("it crashed (as asked)")


class RecordingRuntime(RuntimeDefaults):
    kind = "llamacpp"
    managed = True
    held_by_others = False

    def __init__(self, ctx: RuntimeContext, start_s: float = 0.01, stop_s: float = 0.02) -> None:
        self.ctx = ctx
        self.start_s = start_s
        self.stop_s = stop_s
        self.effects: list[str] = []
        self.devices: list[str] = []  # where each start ran
        self.failing: set[str] = set()  # models whose start fails
        self.supervisors: dict[str, RecordingSupervisor] = {}

    async def sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing:
        if spec.memory is None:
            raise LoadFailed(f"model {spec.name}: the recording runtime needs memory set")
        return self.ctx.catalog.sizing_by_file_size(spec, "recorded", spec.memory, device.kind)

    def supervise(self, spec: ModelSpec, device: Placement, hooks: Hooks) -> Supervisor:
        sup = RecordingSupervisor(self, spec, device, hooks)
        self.supervisors[spec.name] = sup
        return sup

    def handle(self, spec: ModelSpec, supervisor: Supervisor | None, device: str | None) -> Handle:
        assert supervisor is not None
        return Handle(spec.name, supervisor.url + "/v1", device, spec.name)

    def fingerprint(self, spec: ModelSpec) -> str:
        return spec.name
