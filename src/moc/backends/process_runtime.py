"""What the runtimes that are processes of moc's share (llama.cpp, vLLM):
a :class:`~moc.backends.supervisor.ProcessSupervisor` on a free loopback
port, a ``/health`` probe, and taking over a process an earlier moc left
running.

A process left running is taken over only when it is the same runtime for the
same spec (:meth:`ProcessRuntime.fingerprint`), on a device moc still has,
and answers ``/health``; any other is stopped, so nothing moc started runs on
unaccounted. Its pid is checked against its command line first: a pid can be
reused, and moc must never signal a stranger.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence

import httpx

from moc.backends.context import RuntimeContext
from moc.backends.launch import Launch
from moc.backends.process import RuntimeProcess, free_port, process_matches
from moc.backends.record import RuntimeRecord
from moc.backends.runtime import Handle, Placement, Recovered, RuntimeDefaults, Survivor
from moc.backends.supervisor import Hooks, ProcessSupervisor, SupervisionPolicy, Supervisor
from moc.devices.probe import DeviceInfo
from moc.errors import LoadFailed, ModelFileInvalid
from moc.models.catalog import Sizing
from moc.models.spec import ModelSpec

HEALTH_TIMEOUT_S = 2.0


def port_marker(port: int) -> str:
    """What a runtime's command line holds, to tell it from a process that reused its pid."""
    return f"--port {port}"


async def stop_leftover(record: RuntimeRecord, grace_s: float) -> bool:
    """Stop a runtime an earlier moc started, if it still runs; whether it did."""
    if not process_matches(record.pid, port_marker(record.port)):
        return False
    await RuntimeProcess.adopt(record.pid).stop(grace_s)
    return True


class ProcessRuntime(RuntimeDefaults, ABC):
    """A runtime moc starts as a child process; subclasses say how (:meth:`launch`)
    and what it needs (:meth:`sizing`)."""

    kind = ""
    managed = True
    held_by_others = False

    def __init__(self, ctx: RuntimeContext) -> None:
        self._ctx = ctx
        self.policy: SupervisionPolicy = ctx.policy

    @abstractmethod
    def launch(self, spec: ModelSpec, device: DeviceInfo, port: int) -> Launch: ...

    def command(self) -> tuple[str, ...]:
        """The program that runs the model; part of the fingerprint."""
        return ()

    async def check(self, spec: ModelSpec) -> str | None:
        assert spec.path is not None
        return None if spec.path.exists() else f"{spec.path} does not exist"

    @abstractmethod
    async def sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing: ...

    def supervise(self, spec: ModelSpec, device: Placement, hooks: Hooks) -> Supervisor:
        ctx = self._ctx

        def make_launch() -> Launch:
            return ctx.systemd.confine(self.launch(spec, device(), free_port()), spec)

        return ProcessSupervisor(
            spec.name,
            make_launch,
            ctx.logs / f"{spec.name.replace('/', '_')}.log",
            ctx.http,
            self.policy,
            hooks,
        )

    def handle(self, spec: ModelSpec, supervisor: Supervisor | None, device: str | None) -> Handle:
        assert supervisor is not None
        return Handle(spec.name, supervisor.url + "/v1", device, spec.name)

    def fingerprint(self, spec: ModelSpec) -> str:
        text = spec.model_dump_json() + "\0" + "\0".join(self.command())
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    async def healthy(self, port: int) -> bool:
        try:
            response = await self._ctx.http.get(
                f"http://127.0.0.1:{port}/health", timeout=HEALTH_TIMEOUT_S
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def survivors(
        self,
        specs: Sequence[ModelSpec],
        records: Sequence[RuntimeRecord],
        devices: Sequence[DeviceInfo],
    ) -> Recovered:
        by_name = {s.name: s for s in specs}
        by_id = {d.id: d for d in devices}
        found = Recovered()
        for record in records:
            if not process_matches(record.pid, port_marker(record.port)):
                found.gone.append(record.model)
                continue
            spec = by_name.get(record.model)
            sizing = None
            if spec is not None and await self._adoptable(spec, record, by_id):
                try:
                    sizing = await self.sizing(spec, by_id[record.device])
                except (LoadFailed, ModelFileInvalid):
                    sizing = None
            if spec is None or sizing is None:
                await RuntimeProcess.adopt(record.pid).stop(self.policy.stop_grace_s)
                found.stopped.append(record.model)
                continue
            process, port = RuntimeProcess.adopt(record.pid), record.port

            def take_over(
                sup: Supervisor, process: RuntimeProcess = process, port: int = port
            ) -> None:
                assert isinstance(sup, ProcessSupervisor)
                sup.adopt(process, port)

            found.survivors.append(Survivor(record.model, record.device, sizing, take_over))
        return found

    async def _adoptable(
        self, spec: ModelSpec, record: RuntimeRecord, devices: dict[str, DeviceInfo]
    ) -> bool:
        return (
            record.spec_hash == self.fingerprint(spec)
            and record.device in devices
            and await self.healthy(record.port)
        )
