"""A remote OpenAI-compatible server (``backend: openai``): moc routes to it
and neither starts, places nor sizes it. Its key comes from the environment
variable the spec names, read per request so a rotated key takes effect."""

from __future__ import annotations

import os

from moc.backends.context import RuntimeContext
from moc.backends.runtime import Handle, Placement, RuntimeDefaults
from moc.backends.supervisor import Hooks, Supervisor
from moc.devices.probe import DeviceInfo
from moc.errors import LoadFailed
from moc.models.catalog import Sizing
from moc.models.spec import ModelSpec


class RemoteRuntime(RuntimeDefaults):
    kind = "openai"
    managed = False
    held_by_others = False

    def __init__(self, ctx: RuntimeContext) -> None:
        self._ctx = ctx

    def _not_here(self, spec: ModelSpec) -> LoadFailed:
        return LoadFailed(
            f"model {spec.name} is served by {spec.url}; moc does not load or place it",
            model=spec.name,
        )

    async def sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing:
        raise self._not_here(spec)

    def supervise(self, spec: ModelSpec, device: Placement, hooks: Hooks) -> Supervisor:
        raise self._not_here(spec)

    def handle(self, spec: ModelSpec, supervisor: Supervisor | None, device: str | None) -> Handle:
        assert spec.url is not None
        key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        return Handle(spec.name, spec.url.rstrip("/"), None, spec.served_name or spec.name, key)

    def fingerprint(self, spec: ModelSpec) -> str:
        return spec.url or ""
