"""A device as ``/v1/devices`` answers it."""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed


@closed
class Device(TypedDict):
    """One device's memory: what it has, what moc holds on it, what others use."""

    id: str
    """moc's name for it (gpu0, host)"""
    kind: str
    """nvidia or host"""
    name: str
    """the device's own name"""
    uuid: str | None
    """the GPU's UUID; null for host memory"""
    total_bytes: int
    """all its memory"""
    capacity_bytes: int
    """the share of total moc may hand out (reserve_fraction)"""
    held_bytes: int
    """held by leases and model reservations"""
    observed_bytes: int
    """used by processes moc does not account for"""
    reading: Literal["ok", "stale"]
    """stale: the last reading failed (read_error says why); observed_bytes and
    free_bytes are then from the last good one"""
    read_error: str | None
    """why the last reading failed; null while reading is ok"""
    free_bytes: int
    """what an acquire can get now"""
    leases: int
    """live leases on it"""
    reservations: int
    """models holding memory on it"""


@closed
class DeviceList(TypedDict):
    """Every device."""

    devices: list[Device]
