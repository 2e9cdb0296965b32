"""Host memory as a device: a budget carved out of RAM, measured through RSS.

A host device of size T is considered used by ``T − available`` (clamped to
[0, T]): as long as the machine has more RAM available than the device's size,
nothing outside moc is using it. The pids moc knows are measured by their RSS,
children included, since runtimes often fork workers.
"""

from __future__ import annotations

from collections.abc import Set

import psutil

from moc.devices.probe import DeviceInfo, DeviceReading


def default_host_size() -> int:
    """Half the machine's RAM, in whole MiB: room for moc's work and the OS's."""
    total = int(psutil.virtual_memory().total)
    return (total // 2) // (1024 * 1024) * (1024 * 1024)


def process_tree_rss(pid: int) -> int | None:
    """RSS of ``pid`` and its descendants, or None if the process is gone."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    total = 0
    for p in procs:
        try:
            total += int(p.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total


class HostProbe:
    def __init__(self, devices: list[tuple[str, int]]) -> None:
        self._devices = [
            DeviceInfo(id=device_id, kind="host", name="host memory", total=size)
            for device_id, size in devices
        ]

    def devices(self) -> list[DeviceInfo]:
        return list(self._devices)

    def read(self, pids: Set[int]) -> list[DeviceReading]:
        available = int(psutil.virtual_memory().available)
        usage: dict[int, int] = {}
        for pid in pids:
            rss = process_tree_rss(pid)
            if rss is not None:
                usage[pid] = rss
        return [
            DeviceReading(
                id=d.id, used=min(d.total, max(0, d.total - available)), process_usage=usage
            )
            for d in self._devices
        ]

    def close(self) -> None:
        return None
