"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, imported as pynvml).

The module object is passed in so that the same code runs against the real
library on a GPU host and against a recording fake of its API in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from types import ModuleType
from typing import Any

from moc.devices.probe import DeviceInfo, DeviceReading

log = logging.getLogger(__name__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlUnavailable(Exception):
    """NVML could not be initialised (no driver, no GPU, no library)."""


class NvmlProbe:
    def __init__(self, nvml: ModuleType | Any) -> None:
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:  # pynvml raises NVMLError subclasses, or OSError
            raise NvmlUnavailable(str(exc)) from exc
        self._handles: list[Any] = []
        infos: list[DeviceInfo] = []
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                infos.append(
                    DeviceInfo(
                        id=f"gpu{index}",
                        kind="nvidia",
                        name=_text(nvml.nvmlDeviceGetName(handle)),
                        total=int(memory.total),
                        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                        index=index,
                    )
                )
                self._handles.append(handle)
        except nvml.NVMLError as exc:
            nvml.nvmlShutdown()
            raise NvmlUnavailable(str(exc)) from exc
        self._infos = infos

    def devices(self) -> list[DeviceInfo]:
        return list(self._infos)

    def _processes(self, handle: Any) -> dict[int, int]:
        usage: dict[int, int] = {}
        for query in (
            self._nvml.nvmlDeviceGetComputeRunningProcesses,
            self._nvml.nvmlDeviceGetGraphicsRunningProcesses,
        ):
            for proc in query(handle):
                used = proc.usedGpuMemory
                # None when the driver cannot attribute memory (e.g. some
                # containers); such a process then counts as external use.
                if used is not None:
                    usage[int(proc.pid)] = usage.get(int(proc.pid), 0) + int(used)
        return usage

    def read(self, pids: Set[int]) -> list[DeviceReading]:
        readings: list[DeviceReading] = []
        for info, handle in zip(self._infos, self._handles, strict=True):
            try:
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                readings.append(
                    DeviceReading(
                        id=info.id, used=int(memory.used), process_usage=self._processes(handle)
                    )
                )
            except self._nvml.NVMLError as exc:
                readings.append(DeviceReading(id=info.id, error=str(exc)))
        return readings

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:
            log.debug("nvml shutdown failed: %s", exc)
