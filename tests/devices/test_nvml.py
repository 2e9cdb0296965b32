"""The NVML path against a recording fake of pynvml; on a machine with an
NVIDIA GPU, ``test_real_nvml`` runs it against the real library."""

from __future__ import annotations

import importlib

import pytest

from moc.config import DevicesConfig
from moc.devices import discover
from moc.devices.nvml import NvmlProbe, NvmlUnavailable
from tests.devices.fake_nvml import NVML_ERROR_LIBRARY_NOT_FOUND, FakeGpu, FakeNvml

GIB = 1024**3


def two_gpus() -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu(
                "NVIDIA H100 80GB HBM3",
                80 * GIB,
                used=10 * GIB,
                compute=[(100, 6 * GIB), (200, None)],
                graphics=[(100, 1 * GIB)],
            ),
            FakeGpu("NVIDIA L4", 24 * GIB),
        ]
    )


def test_devices_come_from_nvml() -> None:
    nvml = two_gpus()
    probe = NvmlProbe(nvml)
    infos = probe.devices()
    assert [(d.id, d.kind, d.total, d.index) for d in infos] == [
        ("gpu0", "nvidia", 80 * GIB, 0),
        ("gpu1", "nvidia", 24 * GIB, 1),
    ]
    assert infos[0].name == "NVIDIA H100 80GB HBM3"
    assert infos[0].uuid == "GPU-00000000-fake"
    assert nvml.calls[0] == "nvmlInit"


def test_readings_include_per_process_use_and_skip_unattributable() -> None:
    probe = NvmlProbe(two_gpus())
    first, second = probe.read(set())
    assert first.used == 10 * GIB
    assert first.process_usage == {100: 7 * GIB}  # compute + graphics; pid 200 unknown
    assert second.process_usage == {}
    assert first.error is None


def test_a_lost_gpu_reports_an_error_reading_not_an_exception() -> None:
    nvml = two_gpus()
    probe = NvmlProbe(nvml)
    nvml.gpus[1].lost = True
    first, second = probe.read(set())
    assert first.error is None
    assert second.error == "GPU is lost"


def test_init_failure_is_nvml_unavailable() -> None:
    with pytest.raises(NvmlUnavailable, match="Library Not Found"):
        NvmlProbe(FakeNvml([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND))


def test_discover_uses_gpus_and_adds_declared_host_devices() -> None:
    config = DevicesConfig.model_validate({"host": [{"id": "ram", "size": "4GiB"}]})
    probes = discover(config, nvml=two_gpus())
    assert [d.id for p in probes for d in p.devices()] == ["gpu0", "gpu1", "ram"]


def test_discover_with_gpus_adds_no_default_host_device() -> None:
    probes = discover(DevicesConfig(), nvml=two_gpus())
    assert [d.id for p in probes for d in p.devices()] == ["gpu0", "gpu1"]


def test_discover_without_nvml_falls_back_to_one_host_device() -> None:
    nvml = FakeNvml([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
    probes = discover(DevicesConfig(), nvml=nvml)
    (host,) = [d for p in probes for d in p.devices()]
    assert (host.id, host.kind) == ("host", "host")
    assert host.total > 0


def test_nvml_on_but_unavailable_is_a_startup_error() -> None:
    from moc.errors import ConfigError

    with pytest.raises(ConfigError, match=r"devices\.nvml is 'on'"):
        discover(
            DevicesConfig(nvml="on"), nvml=FakeNvml([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND)
        )
    with pytest.raises(ConfigError, match="reports no GPU"):
        discover(DevicesConfig(nvml="on"), nvml=FakeNvml([]))


def test_host_ids_may_not_clash_with_gpu_ids() -> None:
    from moc.errors import ConfigError

    config = DevicesConfig.model_validate({"host": [{"id": "gpu0", "size": "1GiB"}]})
    with pytest.raises(ConfigError, match="clash"):
        discover(config, nvml=two_gpus())


def _real_nvml_available() -> bool:
    try:
        pynvml = importlib.import_module("pynvml")
        pynvml.nvmlInit()
    except Exception:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.gpu
@pytest.mark.skipif(not _real_nvml_available(), reason="no NVIDIA GPU/driver on this machine")
def test_real_nvml() -> None:
    import os

    probe = NvmlProbe(importlib.import_module("pynvml"))
    infos = probe.devices()
    assert infos, "NVML initialised but reported no GPU"
    for reading, info in zip(probe.read({os.getpid()}), infos, strict=True):
        assert reading.error is None
        assert 0 <= reading.used <= info.total
    probe.close()
