"""vLLM as a runtime: ``python -m vllm.entrypoints.openai.api_server`` for one
model, on a free loopback port, with an argv list (no shell).

vLLM pre-allocates: at start it takes ``gpu_memory_util`` of the device for
weights and KV cache (on its CPU backend, the same flag is the fraction of
the machine's memory), so that fraction of the device is what moc reserves
before it starts. Measurement corrects the figure like any other.

LoRA adapters are served next to the base model: each file or directory in
``adapters`` becomes ``--lora-modules <name>=<path>`` (the name is the last
part of the path), with ``--enable-lora``; ``VLLM_ADAPTER_PATHS`` carries the
same paths, colon-joined. A request names an adapter as its model.
"""

from __future__ import annotations

from dataclasses import replace

from moc.backends.context import RuntimeContext
from moc.backends.launch import Launch
from moc.backends.llamacpp import device_env
from moc.backends.process_runtime import ProcessRuntime
from moc.config import VllmConfig
from moc.devices.probe import DeviceInfo
from moc.models.catalog import Sizing
from moc.models.spec import ModelSpec


def launch(spec: ModelSpec, device: DeviceInfo, port: int, config: VllmConfig) -> Launch:
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
    if spec.adapters:
        argv += ["--enable-lora", "--lora-modules"]
        names = spec.adapter_names()
        argv += [f"{n}={p}" for n, p in zip(names, spec.adapters, strict=True)]
        env["VLLM_ADAPTER_PATHS"] = ":".join(str(p) for p in spec.adapters)
    argv += spec.args
    return Launch(tuple(argv), env, port)


class VllmRuntime(ProcessRuntime):
    kind = "vllm"

    def __init__(self, ctx: RuntimeContext) -> None:
        super().__init__(ctx)
        rt = ctx.config.runtimes.vllm
        # vLLM starts slowly and stops its workers slowly: its own timeouts.
        self.policy = replace(
            ctx.policy, ready_timeout_s=rt.ready_timeout_s, stop_grace_s=rt.stop_grace_s
        )

    def command(self) -> tuple[str, ...]:
        return (self._ctx.config.runtimes.vllm.python,)

    def launch(self, spec: ModelSpec, device: DeviceInfo, port: int) -> Launch:
        return launch(spec, device, port, self._ctx.config.runtimes.vllm)

    def known_sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing | None:
        return self._ctx.catalog.sizing_preallocated(spec, device.total, device.kind)

    async def sizing(self, spec: ModelSpec, device: DeviceInfo) -> Sizing:
        return self._ctx.catalog.sizing_preallocated(spec, device.total, device.kind)
