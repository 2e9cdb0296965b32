"""How moc starts vLLM, and what it reserves for it."""

from __future__ import annotations

from pathlib import Path

from moc.backends.vllm import launch
from moc.config import VllmConfig
from moc.devices.probe import DeviceInfo
from moc.models.served import ServedAdapter
from moc.models.spec import ModelSpec

GPU = DeviceInfo(id="gpu0", kind="nvidia", name="H100", total=80 << 30, uuid="GPU-1", index=0)


def spec(**kw: object) -> ModelSpec:
    base = {"name": "qwen", "backend": "vllm", "path": "/models/qwen", "gpu_memory_util": 0.5}
    return ModelSpec.model_validate({**base, **kw})


def test_the_command_carries_the_model_port_limits_and_device() -> None:
    started = launch(spec(ctx=8192, parallel=8, dtype="bfloat16"), GPU, 4100, VllmConfig())
    argv = list(started.argv)
    assert argv[:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    pairs = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert pairs["--model"] == "/models/qwen"
    assert pairs["--port"] == "4100"
    assert pairs["--host"] == "127.0.0.1"
    assert pairs["--served-model-name"] == "qwen"
    assert pairs["--max-model-len"] == "8192"
    assert pairs["--max-num-seqs"] == "8"
    assert pairs["--gpu-memory-utilization"] == "0.5"
    assert pairs["--dtype"] == "bfloat16"
    assert started.env["CUDA_VISIBLE_DEVICES"] == "GPU-1"
    assert "--enable-lora" not in argv


def test_adapters_are_served_by_name_and_listed_in_the_environment() -> None:
    adapters = [Path("/lora/sql-agent"), Path("/lora/support.safetensors")]
    started = launch(spec(adapters=adapters), GPU, 4100, VllmConfig(python="/opt/vllm/bin/python"))
    argv = list(started.argv)
    assert argv[0] == "/opt/vllm/bin/python"
    at = argv.index("--enable-lora")
    assert argv[at + 1 : at + 4] == [
        "--lora-modules",
        "sql-agent=/lora/sql-agent",
        "support=/lora/support.safetensors",
    ]
    assert started.env["VLLM_ADAPTER_PATHS"] == "/lora/sql-agent:/lora/support.safetensors"
    assert started.env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"


def test_registry_adapters_join_the_configured_ones_under_their_own_names() -> None:
    registry = [ServedAdapter("helper", Path("/data/artifacts/views/ab12"), 4096)]
    configured = spec(adapters=[Path("/lora/sql-agent")])
    argv = list(launch(configured, GPU, 4100, VllmConfig(), registry).argv)
    at = argv.index("--lora-modules")
    assert argv[at + 1 : at + 3] == [
        "sql-agent=/lora/sql-agent",
        "helper=/data/artifacts/views/ab12",
    ]
    assert argv.count("--lora-modules") == 1  # one list: a second flag would replace the first
    only_registry = launch(spec(), GPU, 4100, VllmConfig(), registry)
    assert "--enable-lora" in only_registry.argv
    assert only_registry.env["VLLM_ADAPTER_PATHS"] == "/data/artifacts/views/ab12"
