"""How leases and devices are shown to clients, the same on every transport."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from moc.devices.probe import DeviceInfo
from moc.leases.model import Lease
from moc.ledger import DeviceView


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lease_view(lease: Lease, now: float, used: int | None, over_limit: bool) -> dict[str, Any]:
    return {
        "id": lease.id,
        "device": lease.device,
        "bytes": lease.bytes,
        "holder": lease.holder,
        "pid": lease.pid,
        "priority": lease.priority,
        "preemptible": lease.preemptible,
        "fencing_token": lease.fencing_token,
        "ttl_s": lease.ttl_s,
        "created_at": iso(lease.created_at),
        "expires_at": iso(lease.expires_at),
        "expires_in_s": round(max(0.0, lease.expires_at - now), 3),
        "used_bytes": used,
        "over_limit": over_limit,
    }


def device_view(info: DeviceInfo, view: DeviceView) -> dict[str, Any]:
    return {
        "id": info.id,
        "kind": info.kind,
        "name": info.name,
        "uuid": info.uuid,
        "total_bytes": view.total,
        "capacity_bytes": view.capacity,
        "held_bytes": view.held,
        "observed_bytes": view.external,
        "free_bytes": view.free,
        "leases": view.leases,
        "reservations": view.reservations,
    }
