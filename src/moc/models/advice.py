"""What to change when a model can never fit: advice that depends on how its
size was decided, so that it names a setting the user actually has."""

from __future__ import annotations

from moc.models.spec import ModelSpec
from moc.units import format_size


def too_large_advice(spec: ModelSpec) -> str:
    """The remedy for ``exceeds_capacity``, to follow "it can never fit" in its message.

    A configured ``memory`` is reserved as given, whatever ctx or quantisation,
    so only that setting (or a larger device) helps; vLLM takes a fixed share of
    the device; otherwise the estimate grows with the KV cache (ctx × parallel)
    and the weights.
    """
    where = f"models[{spec.name}]"
    if spec.memory is not None:
        return (
            f"{where}.memory reserves {format_size(spec.memory)} as configured: lower it if the "
            "model needs less, or run it on a larger device"
        )
    if spec.backend == "vllm":
        return (
            f"{where}.gpu_memory_util ({spec.gpu_memory_util:g}) asks for more than moc hands "
            "out: keep it below devices.reserve_fraction"
        )
    if spec.backend == "ollama":
        return f"set {where}.memory to what Ollama uses for it, or pick a smaller model"
    return (
        f"lower {where}.ctx ({spec.ctx}) or parallel ({spec.parallel}), which size the KV "
        "cache, or use a smaller quantisation"
    )
