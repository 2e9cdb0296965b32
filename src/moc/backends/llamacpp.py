"""The llama.cpp runtime: its HTTP server on a free loopback port.

Two ways to run it, chosen by ``runtimes.llamacpp.server``:

- the ``llama-server`` executable (a path, or found on PATH with ``auto``);
- the ``xllamacpp`` wheel in a child Python process
  (:mod:`moc.backends.xllamacpp_server`), so a plain ``pip install`` works.

Both take the same flags. ``ctx`` in a model spec is per request, so the
server gets ``--ctx-size ctx × parallel`` shared by ``--parallel`` slots.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence

from moc.backends.context import RuntimeContext
from moc.backends.launch import Launch
from moc.backends.process_runtime import ProcessRuntime
from moc.config import LlamaCppConfig
from moc.devices.probe import DeviceInfo
from moc.errors import ConfigError, ModelFileInvalid
from moc.models.catalog import Sizing
from moc.models.gguf_facts import GgufError
from moc.models.served import GGUF_ADAPTER, ServedAdapter
from moc.models.spec import ModelSpec


def resolve_server(setting: str) -> tuple[str, ...]:
    """The command prefix that runs a llama.cpp server for ``setting``."""
    xllamacpp = (sys.executable, "-m", "moc.backends.xllamacpp_server")
    if setting == "xllamacpp":
        return xllamacpp
    if setting == "auto":
        found = shutil.which("llama-server")
        return (found,) if found else xllamacpp
    found = shutil.which(setting)
    if found is None:
        raise ConfigError(
            f"runtimes.llamacpp.server: {setting!r} is not an executable file "
            "(use 'auto', 'xllamacpp' or the path of llama-server)"
        )
    return (found,)


def device_env(device: DeviceInfo) -> dict[str, str]:
    """Make only the model's device visible to the runtime."""
    if device.kind == "nvidia":
        return {"CUDA_VISIBLE_DEVICES": device.uuid or str(device.index)}
    return {"CUDA_VISIBLE_DEVICES": ""}


def launch(
    spec: ModelSpec, device: DeviceInfo, port: int, config: LlamaCppConfig, server: tuple[str, ...]
) -> Launch:
    assert spec.path is not None  # required, or set by the loader from a verified artifact
    argv = [
        *server,
        "--model",
        str(spec.path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        str(spec.ctx * spec.parallel),
        "--parallel",
        str(spec.parallel),
        "--alias",
        spec.name,
        "--n-gpu-layers",
        "999" if device.kind == "nvidia" else "0",
    ]
    if spec.embeddings:
        argv.append("--embeddings")
    if config.threads:
        argv += ["--threads", str(config.threads)]
    for adapter in spec.adapters:
        argv += ["--lora", str(adapter)]
    argv += spec.args
    return Launch(tuple(argv), device_env(device), port)


class LlamaCppRuntime(ProcessRuntime):
    """llama.cpp's server. Adapters from the registry are started with it
    unapplied (``--lora-scaled FILE 0``) and each request applies the one it
    names; llama.cpp cannot add an adapter to a running server, so a new one
    waits for the next start."""

    kind = "llamacpp"
    adapter_files = frozenset({GGUF_ADAPTER})
    lora_in_request = True

    def with_adapters(self, spec: ModelSpec, adapters: Sequence[ServedAdapter]) -> ModelSpec:
        args = list(spec.args)
        for adapter in adapters:
            args += ["--lora-scaled", str(adapter.folder / GGUF_ADAPTER), "0"]
        return spec.model_copy(update={"args": tuple(args)})

    def __init__(self, ctx: RuntimeContext) -> None:
        super().__init__(ctx)
        self._server = resolve_server(ctx.config.runtimes.llamacpp.server)

    def command(self) -> tuple[str, ...]:
        return self._server

    def launch(self, spec: ModelSpec, device: DeviceInfo, port: int) -> Launch:
        return launch(spec, device, port, self._ctx.config.runtimes.llamacpp, self._server)

    async def check(self, spec: ModelSpec) -> str | None:
        try:
            await self._ctx.catalog.facts_async(spec)
        except GgufError as exc:
            return str(exc)
        return None

    def known_sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing | None:
        cached = self._ctx.catalog.cached(spec)
        return None if cached is None else self._ctx.catalog.sizing(spec, *cached, device.kind)

    async def sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing:
        try:
            fp, facts = await self._ctx.catalog.facts_async(spec)
        except GgufError as exc:
            raise ModelFileInvalid(f"model {spec.name}: {exc}", model=spec.name) from exc
        return self._ctx.catalog.sizing(spec, fp, facts, device.kind)
