"""Ollama as a backend: moc, not Ollama, decides what stays resident.

moc does not start Ollama; it drives one that runs (``url``) through its REST
API (Ollama 0.12, docs/api.md):

- **load**: ``POST /api/generate`` with no prompt and ``keep_alive: -1``, so
  the model stays loaded while moc holds it; confirmed in ``/api/ps``;
- **unload**: the same with ``keep_alive: 0``;
- **watch**: ``/api/ps`` every ``POLL_S``: the model's ``size_vram`` (GPU)
  or ``size`` is its measured use; a model that vanished (Ollama restarted,
  or unloaded it) or an Ollama that stopped answering takes the model to
  ``backoff``, and it is loaded again when Ollama answers. Inference through
  Ollama resets a model's keep-alive to Ollama's default, so the watch pins
  it again when ``expires_at`` comes near.

An Ollama that is down is not the model's fault: the model is retried for as
long as moc holds it (backoff up to ``restart_backoff_max_s``), never marked
degraded for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from moc.backends.context import RuntimeContext
from moc.backends.eligible import eligible_devices
from moc.backends.record import RuntimeRecord
from moc.backends.runtime import Handle, Placement, Recovered, RuntimeDefaults, Survivor
from moc.backends.state import State
from moc.backends.supervisor import Hooks, SupervisionPolicy, Supervisor
from moc.devices.probe import DeviceInfo
from moc.errors import LoadFailed
from moc.models.catalog import Sizing
from moc.models.spec import ModelSpec
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

POLL_S = 2.0
PIN_MARGIN_S = 86400.0  # a model expiring sooner than this is pinned again


class OllamaError(Exception):
    """Ollama answered with an error, or did not answer."""


class OllamaApi:
    """The few calls moc makes to an Ollama server."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http

    async def _call(self, method: str, path: str, wait_s: float, **kw: Any) -> Any:
        try:
            response = await self._http.request(method, self.base_url + path, timeout=wait_s, **kw)
        except httpx.HTTPError as exc:
            raise OllamaError(f"Ollama at {self.base_url} is not answering: {exc!r}") from exc
        if response.status_code != 200:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise OllamaError(f"Ollama answered {response.status_code}: {message}")
        return response.json()

    async def ps(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self._call("GET", "/api/ps", 5.0))["models"]
        return found

    async def tags(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self._call("GET", "/api/tags", 5.0))["models"]
        return found

    async def keep(self, tag: str, keep_alive: int, wait_s: float) -> None:
        """Load (``-1``: for good) or unload (``0``) a model."""
        body = {"model": tag, "keep_alive": keep_alive, "stream": False}
        await self._call("POST", "/api/generate", wait_s, json=body)

    async def file(self, tag: str) -> tuple[str, int]:
        """The model's digest and file size, from /api/tags."""
        for entry in await self.tags():
            if tag in (entry.get("model"), entry.get("name")):
                return str(entry.get("digest", "")), int(entry.get("size") or 0)
        raise OllamaError(f"Ollama at {self.base_url} has no model {tag} (ollama pull {tag})")

    async def resident(self, tag: str) -> dict[str, Any] | None:
        return next((m for m in await self.ps() if tag in (m.get("model"), m.get("name"))), None)


def used_bytes(entry: dict[str, Any], device_kind: str) -> int:
    """What a loaded model holds on a device of this kind, from its /api/ps entry."""
    key = "size_vram" if device_kind == "nvidia" else "size"
    return int(entry.get(key) or 0)


def _expires_in(entry: dict[str, Any]) -> float:
    try:
        at = datetime.fromisoformat(str(entry["expires_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return (at - datetime.now(UTC)).total_seconds()


class OllamaSupervisor(Supervisor):
    """One model held resident in an Ollama server."""

    def __init__(
        self,
        model: str,
        tag: str,
        api: OllamaApi,
        device: Placement,
        policy: SupervisionPolicy,
        hooks: Hooks,
    ) -> None:
        # Ollama being down is not the model's failing: keep trying while held.
        super().__init__(model, replace(policy, restart_limit=1 << 30), hooks)
        self.tag = tag
        self.api = api
        self._device = device

    @property
    def url(self) -> str:
        return self.api.base_url

    def adopt(self, entry: dict[str, Any]) -> None:
        """Take over the model, found resident after a restart of moc."""
        self._to(State.STARTING, "found resident in Ollama after a restart of moc")
        self._became_ready("adopted")
        self._hooks.on_usage(used_bytes(entry, self._device().kind))

    async def _bring_up(self) -> None:
        try:
            await self.api.keep(self.tag, -1, self._policy.ready_timeout_s)
            entry = await self.api.resident(self.tag)
        except OllamaError as exc:
            raise self._failure(str(exc)) from exc
        if entry is None:
            raise self._failure(f"Ollama did not list {self.tag} in /api/ps after loading it")
        self._hooks.on_usage(used_bytes(entry, self._device().kind))

    async def _until_down(self) -> str:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                entry = await self.api.resident(self.tag)
                if entry is not None and _expires_in(entry) < PIN_MARGIN_S:
                    await self.api.keep(self.tag, -1, self._policy.ready_timeout_s)
            except OllamaError as exc:
                return str(exc)
            if entry is None:
                return f"Ollama no longer has {self.tag} loaded"
            self._hooks.on_usage(used_bytes(entry, self._device().kind))

    async def _bring_down(self) -> None:
        try:
            await self.api.keep(self.tag, 0, self._policy.stop_grace_s + 5.0)
        except OllamaError as exc:  # a stopped Ollama holds nothing either
            event(log, logging.INFO, "unload not confirmed", model=self.model, error=str(exc))


class OllamaRuntime(RuntimeDefaults):
    """Models held resident in an Ollama server that runs already."""

    kind = "ollama"
    managed = True
    held_by_others = True

    def __init__(self, ctx: RuntimeContext) -> None:
        self._ctx = ctx

    def _api(self, spec: ModelSpec) -> OllamaApi:
        assert spec.url is not None
        return OllamaApi(spec.url, self._ctx.http)

    async def sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing:
        try:
            digest, size = await self._api(spec).file(tag(spec))
        except OllamaError as exc:
            raise LoadFailed(f"model {spec.name}: {exc}", model=spec.name) from exc
        return self._ctx.catalog.sizing_by_file_size(spec, digest, size, device.kind)

    def supervise(self, spec: ModelSpec, device: Placement, hooks: Hooks) -> Supervisor:
        return OllamaSupervisor(
            spec.name, tag(spec), self._api(spec), device, self._ctx.policy, hooks
        )

    def handle(self, spec: ModelSpec, supervisor: Supervisor | None, device: str | None) -> Handle:
        assert supervisor is not None
        return Handle(spec.name, supervisor.url + "/v1", device, tag(spec))

    def fingerprint(self, spec: ModelSpec) -> str:
        return tag(spec)

    async def survivors(
        self,
        specs: Sequence[ModelSpec],
        records: Sequence[RuntimeRecord],
        devices: Sequence[DeviceInfo],
    ) -> Recovered:
        """Models Ollama still holds from before (moc pinned them with
        keep-alive forever): taken back with their memory instead of lost."""
        found = Recovered()
        by_server: dict[str, list[ModelSpec]] = {}
        for spec in specs:
            assert spec.url is not None
            by_server.setdefault(spec.url, []).append(spec)
        for url, served in by_server.items():  # one /api/ps per Ollama server
            try:
                resident = await OllamaApi(url, self._ctx.http).ps()
            except OllamaError:
                continue
            entries = {m.get("model"): m for m in resident} | {m.get("name"): m for m in resident}
            for spec in served:
                entry = entries.get(tag(spec))
                if entry is None:
                    continue
                try:
                    device = eligible_devices(spec, devices)[0]
                    sizing = await self.sizing(spec, device)
                except LoadFailed:
                    continue

                def take_over(sup: Supervisor, entry: dict[str, Any] = entry) -> None:
                    assert isinstance(sup, OllamaSupervisor)
                    sup.adopt(entry)

                found.survivors.append(Survivor(spec.name, device.id, sizing, take_over))
        return found


def tag(spec: ModelSpec) -> str:
    """The model's name in Ollama."""
    return spec.served_name or spec.name
