"""The arithmetic of memory per device. Pure: no I/O, no clock, no asyncio.

For each device::

    capacity = floor(total × reserve_fraction)
    free     = capacity − held − external

``held`` is the sum of the entries (leases and model reservations) on the
device; ``external`` is memory in use by processes moc does not account for,
as last observed (see :func:`attribute`). ``free`` may go negative when
something outside moc grows; then nothing new is admitted until it shrinks.

Ownership: one Ledger per daemon, mutated only from the event-loop thread and
never across an ``await`` between a ``fits`` check and the ``reserve`` it
justifies — callers do both in one synchronous step, which is what makes
admission atomic without a lock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class EntryKind(StrEnum):
    LEASE = "lease"
    MODEL = "model"


@dataclass(frozen=True)
class Entry:
    id: str
    device: str
    bytes: int
    kind: EntryKind


@dataclass
class DeviceBudget:
    id: str
    kind: str
    total: int
    capacity: int
    external: int = 0
    held: int = 0
    entries: dict[str, Entry] = field(default_factory=dict)
    unread: str | None = None  # why the last reading failed; ``external`` is then older

    @property
    def free(self) -> int:
        return self.capacity - self.held - self.external


@dataclass(frozen=True)
class DeviceView:
    """A snapshot of one device's arithmetic, safe to hand to other layers."""

    id: str
    kind: str
    total: int
    capacity: int
    held: int
    external: int
    free: int
    leases: int
    reservations: int
    unread: str | None = None  # set while the device cannot be read: ``external`` is stale


def capacity_of(total: int, reserve_fraction: float) -> int:
    return math.floor(total * reserve_fraction)


@dataclass(frozen=True)
class Claim:
    """An entry as the observer sees it: which process, if any, uses it."""

    entry_id: str
    device: str
    pid: int | None
    bytes: int


@dataclass(frozen=True)
class Attribution:
    external: int
    used_by_entry: dict[str, int]


def attribute(used: int, process_usage: dict[int, int], claims: list[Claim]) -> Attribution:
    """Split a device's observed use between moc's entries and everything else.

    ``used`` is all memory in use on the device and ``process_usage`` what each
    process uses there. Entries that name a pid are charged that process's use;
    the rest of ``used`` is external, except that entries naming no process are
    assumed to be among the unknown users: without that, a lease taken by a
    script that gave no pid would be counted twice, once held and once observed.
    """
    attributed_pids: set[int] = set()
    used_by_entry: dict[str, int] = {}
    unattributed_held = 0
    for claim in claims:
        if claim.pid is None:
            unattributed_held += claim.bytes
            continue
        use = process_usage.get(claim.pid, 0)
        used_by_entry[claim.entry_id] = use
        attributed_pids.add(claim.pid)
    attributed = sum(process_usage.get(pid, 0) for pid in attributed_pids)
    return Attribution(max(0, used - attributed - unattributed_held), used_by_entry)


class Ledger:
    def __init__(self) -> None:
        self._devices: dict[str, DeviceBudget] = {}
        self._entries: dict[str, Entry] = {}

    # --- devices -----------------------------------------------------------
    def add_device(self, device_id: str, kind: str, total: int, reserve_fraction: float) -> None:
        if device_id in self._devices:
            raise ValueError(f"device {device_id!r} already in the ledger")
        self._devices[device_id] = DeviceBudget(
            id=device_id, kind=kind, total=total, capacity=capacity_of(total, reserve_fraction)
        )

    def has_device(self, device_id: str) -> bool:
        return device_id in self._devices

    def device_ids(self) -> list[str]:
        return list(self._devices)

    def set_external(self, device_id: str, external: int) -> None:
        device = self._devices[device_id]
        device.external = max(0, external)
        device.unread = None

    def mark_unread(self, device_id: str, error: str) -> None:
        """The device could not be read: ``external`` keeps its last figure,
        and views say it is stale and why."""
        self._devices[device_id].unread = error

    def capacity(self, device_id: str) -> int:
        return self._devices[device_id].capacity

    def free(self, device_id: str) -> int:
        return self._devices[device_id].free

    def fits(self, device_id: str, nbytes: int) -> bool:
        return self._devices[device_id].free >= nbytes

    def could_ever_fit(self, device_id: str, nbytes: int) -> bool:
        return self._devices[device_id].capacity >= nbytes

    def best_fit(self, nbytes: int, candidates: Iterable[str]) -> str | None:
        """The device with the least free memory that still fits ``nbytes``.

        Best fit keeps large holes whole for large requests. Ties go to the
        first candidate, so the order of ``candidates`` is a stable preference.
        """
        best: str | None = None
        best_free = 0
        for device_id in candidates:
            free = self._devices[device_id].free
            if free >= nbytes and (best is None or free < best_free):
                best, best_free = device_id, free
        return best

    # --- entries -----------------------------------------------------------
    def reserve(self, entry: Entry) -> None:
        """Record ``entry``. The caller has checked ``fits``; this only adds."""
        if entry.id in self._entries:
            raise ValueError(f"ledger entry {entry.id!r} already exists")
        device = self._devices[entry.device]
        device.entries[entry.id] = entry
        device.held += entry.bytes
        self._entries[entry.id] = entry

    def release(self, entry_id: str) -> Entry | None:
        entry = self._entries.pop(entry_id, None)
        if entry is not None:
            device = self._devices[entry.device]
            del device.entries[entry_id]
            device.held -= entry.bytes
        return entry

    def resize(self, entry_id: str, nbytes: int) -> None:
        """Change an entry's size (a model's measured use replacing its estimate)."""
        old = self._entries[entry_id]
        new = Entry(old.id, old.device, nbytes, old.kind)
        device = self._devices[old.device]
        device.entries[entry_id] = new
        device.held += nbytes - old.bytes
        self._entries[entry_id] = new

    def entry(self, entry_id: str) -> Entry | None:
        return self._entries.get(entry_id)

    # --- views -------------------------------------------------------------
    def view(self, device_id: str) -> DeviceView:
        d = self._devices[device_id]
        leases = sum(1 for e in d.entries.values() if e.kind is EntryKind.LEASE)
        return DeviceView(
            id=d.id,
            kind=d.kind,
            total=d.total,
            capacity=d.capacity,
            held=d.held,
            external=d.external,
            free=d.free,
            leases=leases,
            reservations=len(d.entries) - leases,
            unread=d.unread,
        )

    def views(self) -> list[DeviceView]:
        return [self.view(d) for d in self._devices]
