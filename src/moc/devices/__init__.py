"""Reading memory facts from devices: NVML for NVIDIA GPUs, process RSS for host
memory declared as a device. This package decides nothing."""

from moc.devices.discover import discover
from moc.devices.probe import DeviceInfo, DeviceProbe, DeviceReading

__all__ = ["DeviceInfo", "DeviceProbe", "DeviceReading", "discover"]
