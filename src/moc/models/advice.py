"""What to change when a model can never fit: advice that fits how its size was set."""

from __future__ import annotations

from moc.models.spec import ModelSpec


def too_large_advice(spec: ModelSpec) -> str:
    if spec.memory is not None:
        return (
            "its configured memory is larger than the device: lower memory, or use a larger device"
        )
    if spec.backend == "vllm":
        return "lower gpu_memory_util, ctx or parallel"
    return "lower ctx or parallel, or use a smaller quantisation"
