"""Which devices a model may go on: the one it names, else the GPUs, else any."""

from __future__ import annotations

from collections.abc import Sequence

from moc.devices.probe import DeviceInfo
from moc.errors import LoadFailed
from moc.models.spec import ModelSpec


def eligible_devices(spec: ModelSpec, devices: Sequence[DeviceInfo]) -> list[DeviceInfo]:
    """In the order placement considers them; raises LoadFailed for a device
    that does not exist."""
    if spec.device is not None:
        named = [d for d in devices if d.id == spec.device]
        if not named:
            raise LoadFailed(
                f"model {spec.name}: device {spec.device!r} does not exist "
                f"(devices: {', '.join(d.id for d in devices)})",
                model=spec.name,
            )
        return named
    gpus = [d for d in devices if d.kind == "nvidia"]
    return gpus or list(devices)
