from __future__ import annotations

from pathlib import Path

from moc.models.advice import too_large_advice
from moc.models.spec import ModelSpec
from moc.units import GIB


def test_a_configured_memory_is_the_setting_to_change() -> None:
    spec = ModelSpec(name="big", path=Path("/m/big.gguf"), memory=64 * GIB)
    advice = too_large_advice(spec)
    assert advice == (
        "models[big].memory reserves 64.0 GiB as configured: lower it if the model needs less, "
        "or run it on a larger device"
    )
    assert "ctx" not in advice
    assert "quantisation" not in advice


def test_an_estimated_model_is_told_about_ctx_parallel_and_quantisation() -> None:
    spec = ModelSpec(name="q", path=Path("/m/q.gguf"), ctx=32768, parallel=4)
    assert too_large_advice(spec) == (
        "lower models[q].ctx (32768) or parallel (4), which size the KV cache, "
        "or use a smaller quantisation"
    )


def test_vllm_is_told_about_gpu_memory_util() -> None:
    spec = ModelSpec(name="v", backend="vllm", path=Path("/m/v"), gpu_memory_util=0.95)
    assert too_large_advice(spec).startswith("models[v].gpu_memory_util (0.95) asks for more")


def test_ollama_is_told_to_declare_memory() -> None:
    spec = ModelSpec(name="o", backend="ollama", url="http://h:11434")
    assert too_large_advice(spec).startswith("set models[o].memory")
