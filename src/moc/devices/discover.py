"""Which devices this host has, by configuration and by asking NVML."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

from moc.config import DevicesConfig
from moc.devices.host import HostProbe, default_host_size
from moc.devices.nvml import NvmlProbe, NvmlUnavailable
from moc.devices.probe import DeviceProbe
from moc.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_HOST_ID = "host"


def _import_pynvml() -> ModuleType | None:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


def discover(config: DevicesConfig, nvml: ModuleType | Any | None = None) -> list[DeviceProbe]:
    """Probes for every device moc will manage.

    NVIDIA GPUs come from NVML unless ``devices.nvml`` is ``off``; ``on`` makes
    a missing NVML a startup error. Host devices declared in config are always
    added. With neither, one host device of half the RAM is created so that a
    CPU-only machine works with no configuration.
    """
    probes: list[DeviceProbe] = []
    if config.nvml != "off":
        module = nvml if nvml is not None else _import_pynvml()
        try:
            if module is None:
                raise NvmlUnavailable("the nvidia-ml-py package is not installed")
            probe = NvmlProbe(module)
            if probe.devices():
                probes.append(probe)
            else:
                probe.close()
                if config.nvml == "on":
                    raise ConfigError("devices.nvml is 'on' but NVML reports no GPU")
        except NvmlUnavailable as exc:
            if config.nvml == "on":
                raise ConfigError(
                    f"devices.nvml is 'on' but NVML could not be initialised: {exc}"
                ) from exc
            log.debug("nvml unavailable: %s", exc)
    declared = [(d.id, d.size) for d in config.host]
    if not declared and not probes:
        declared = [(DEFAULT_HOST_ID, default_host_size())]
    if declared:
        probes.append(HostProbe(declared))
    ids = [info.id for p in probes for info in p.devices()]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ConfigError(
            f"devices.host: id(s) {sorted(duplicates)} clash with NVIDIA GPU ids (gpuN)"
        )
    return probes
