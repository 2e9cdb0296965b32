"""A recording fake of the pynvml API (nvidia-ml-py 12/13), for machines with
no NVIDIA GPU. It follows the real module's shapes: ``nvmlDeviceGetMemoryInfo``
returns an object with ``total``/``free``/``used`` in bytes; the process
queries return objects with ``pid`` and ``usedGpuMemory`` (None where the
driver cannot attribute memory); names and UUIDs are ``str``; failures raise
``NVMLError`` subclasses carrying an NVML return code."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_ERROR_UNKNOWN = 999
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_LIBRARY_NOT_FOUND = 12


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {
            NVML_ERROR_GPU_IS_LOST: "GPU is lost",
            NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        }.get(self.value, "Unknown Error")


@dataclass
class FakeGpu:
    name: str
    total: int
    used: int = 0
    compute: list[tuple[int, int | None]] = field(default_factory=list)
    graphics: list[tuple[int, int | None]] = field(default_factory=list)
    lost: bool = False


class FakeNvml:
    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.calls: list[str] = []

    def _handle(self, handle: Any) -> FakeGpu:
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return gpu

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.calls.append("nvmlShutdown")

    def nvmlDeviceGetCount(self) -> int:
        self.calls.append("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self.calls.append(f"nvmlDeviceGetHandleByIndex({index})")
        return SimpleNamespace(index=index)

    def nvmlDeviceGetName(self, handle: Any) -> str:
        self.calls.append("nvmlDeviceGetName")
        return self._handle(handle).name

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        self.calls.append("nvmlDeviceGetUUID")
        return f"GPU-0000000{handle.index}-fake"

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        self.calls.append("nvmlDeviceGetMemoryInfo")
        gpu = self._handle(handle)
        return SimpleNamespace(total=gpu.total, used=gpu.used, free=gpu.total - gpu.used)

    def _procs(self, procs: list[tuple[int, int | None]]) -> list[Any]:
        return [
            SimpleNamespace(
                pid=pid, usedGpuMemory=used, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF
            )
            for pid, used in procs
        ]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[Any]:
        self.calls.append("nvmlDeviceGetComputeRunningProcesses")
        return self._procs(self._handle(handle).compute)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> list[Any]:
        self.calls.append("nvmlDeviceGetGraphicsRunningProcesses")
        return self._procs(self._handle(handle).graphics)
