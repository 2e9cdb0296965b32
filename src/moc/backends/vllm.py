"""vLLM as a runtime: ``python -m vllm.entrypoints.openai.api_server`` for one
model, on a free loopback port, with an argv list (no shell).

vLLM pre-allocates: at start it takes ``gpu_memory_util`` of the device for
weights and KV cache (on its CPU backend, the same flag is the fraction of
the machine's memory), so that fraction of the device is what moc reserves
before it starts. Measurement corrects the figure like any other.

LoRA adapters are served next to the base model: each file or directory in
``adapters`` becomes ``--lora-modules <name>=<path>`` (the name is the last
part of the path), with ``--enable-lora``; ``VLLM_ADAPTER_PATHS`` carries the
same paths, colon-joined. Adapters from the registry (PEFT folders, verified)
join them under their own names. A request names an adapter as its model. A
server started with adapters takes new ones while it runs
(``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` and ``POST /v1/load_lora_adapter``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import httpx

from moc.backends.context import RuntimeContext
from moc.backends.launch import Launch
from moc.backends.llamacpp import device_env
from moc.backends.process_runtime import ProcessRuntime
from moc.backends.runtime import Handle
from moc.config import VllmConfig
from moc.devices.probe import DeviceInfo
from moc.errors import BackendUnavailable
from moc.models.catalog import Sizing
from moc.models.served import ServedAdapter
from moc.models.spec import ModelSpec

ADAPTER_LOAD_TIMEOUT_S = 120.0


def launch(
    spec: ModelSpec,
    device: DeviceInfo,
    port: int,
    config: VllmConfig,
    registry: Sequence[ServedAdapter] = (),
) -> Launch:
    assert spec.path is not None  # required, or set by the loader from a verified artifact
    assert spec.gpu_memory_util is not None
    argv = [
        config.python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(spec.path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        spec.name,
        "--max-model-len",
        str(spec.ctx),
        "--max-num-seqs",
        str(spec.parallel),
        "--gpu-memory-utilization",
        str(spec.gpu_memory_util),
    ]
    if spec.dtype:
        argv += ["--dtype", spec.dtype]
    env = dict(device_env(device))
    modules = [*zip(spec.adapter_names(), spec.adapters, strict=True)]
    modules += [(a.name, a.folder) for a in registry]
    if modules:
        argv += ["--enable-lora", "--lora-modules", *(f"{n}={p}" for n, p in modules)]
        env["VLLM_ADAPTER_PATHS"] = ":".join(str(p) for _, p in modules)
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # adapters added while it runs
    argv += spec.args
    return Launch(tuple(argv), env, port)


class VllmRuntime(ProcessRuntime):
    kind = "vllm"
    adapter_files = frozenset({"adapter_config.json", "adapter_model.safetensors"})

    def __init__(self, ctx: RuntimeContext) -> None:
        super().__init__(ctx)
        # The registry adapters each model starts with, by model: set by the
        # loader (with_adapters) before a start, read by launch; event loop only.
        self._registry: dict[str, tuple[ServedAdapter, ...]] = {}
        rt = ctx.config.runtimes.vllm
        # vLLM starts slowly and stops its workers slowly: its own timeouts.
        self.policy = replace(
            ctx.policy, ready_timeout_s=rt.ready_timeout_s, stop_grace_s=rt.stop_grace_s
        )

    def command(self) -> tuple[str, ...]:
        return (self._ctx.config.runtimes.vllm.python,)

    def launch(self, spec: ModelSpec, device: DeviceInfo, port: int) -> Launch:
        registry = self._registry.get(spec.name, ())
        return launch(spec, device, port, self._ctx.config.runtimes.vllm, registry)

    def with_adapters(self, spec: ModelSpec, adapters: Sequence[ServedAdapter]) -> ModelSpec:
        self._registry[spec.name] = tuple(adapters)
        return spec

    async def add_adapter(self, handle: Handle, adapter: ServedAdapter) -> bool:
        """``POST /v1/load_lora_adapter``: only a server started with adapters
        (LoRA on, runtime updating allowed) takes one more."""
        if not self._registry.get(handle.name) and not self._ctx.catalog.spec(handle.name).adapters:
            return False
        body = {"lora_name": adapter.name, "lora_path": str(adapter.folder)}
        url = handle.base_url + "/load_lora_adapter"
        try:
            answer = await self._ctx.http.post(url, json=body, timeout=ADAPTER_LOAD_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"model {handle.name}: loading adapter {adapter.name} failed: {exc}",
                model=handle.name,
            ) from exc
        if answer.status_code != 200:
            raise BackendUnavailable(
                f"model {handle.name}: vLLM refused adapter {adapter.name} "
                f"({answer.status_code}): {answer.text[:300]}",
                model=handle.name,
            )
        self._registry[handle.name] = (*self._registry.get(handle.name, ()), adapter)
        return True

    def known_sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing | None:
        return self._ctx.catalog.sizing_preallocated(spec, device.total, device.kind)

    async def sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing:
        return self._ctx.catalog.sizing_preallocated(spec, device.total, device.kind)
