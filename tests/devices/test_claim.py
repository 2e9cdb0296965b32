"""Device claims, in one process: two descriptors of one file lock each other
out exactly as two daemons would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moc.devices.claim import DeviceClaims, claim_dir, default_claim_dirs, host_identity
from moc.devices.probe import DeviceInfo
from moc.errors import ConfigError

GPU = DeviceInfo("gpu0", "nvidia", "NVIDIA H200", 141 << 30, uuid="GPU-5e1c", index=0)
OTHER_GPU = DeviceInfo("gpu1", "nvidia", "NVIDIA H200", 141 << 30, uuid="GPU-77aa", index=1)


def host(device_id: str = "host") -> DeviceInfo:
    return DeviceInfo(device_id, "host", "host memory", 1 << 30)


def take(tmp_path: Path, *devices: DeviceInfo, declared: bool = True) -> DeviceClaims:
    return DeviceClaims.take(devices, declared_host=declared, directory=tmp_path)


def test_a_gpu_is_claimed_once_by_uuid(tmp_path: Path) -> None:
    first = take(tmp_path, GPU)
    with pytest.raises(ConfigError) as info:
        take(tmp_path, OTHER_GPU, GPU)
    assert str(info.value) == (
        f"device gpu0 (NVIDIA H200, GPU-5e1c) is owned by moc pid {os.getpid()} (claim "
        f"{tmp_path / 'nvidia-GPU-5e1c.lock'}); stop that moc, or give this one other devices"
    )
    # All or nothing: the refused daemon let go of gpu1 as well.
    take(tmp_path, OTHER_GPU).release()
    first.release()
    take(tmp_path, GPU).release()


def test_declared_host_devices_side_by_side_unless_the_ids_match(tmp_path: Path) -> None:
    a = take(tmp_path, host("ram-a"))
    b = take(tmp_path, host("ram-b"))
    with pytest.raises(
        ConfigError, match=rf"device ram-a \(host memory\) is owned by moc pid {os.getpid()} "
    ):
        take(tmp_path, host("ram-a"))
    a.release()
    b.release()


def test_the_default_host_device_claims_all_host_memory(tmp_path: Path) -> None:
    whole = take(tmp_path, host(), declared=False)
    with pytest.raises(ConfigError) as info:
        take(tmp_path, host("ram"))
    assert f"moc pid {os.getpid()} runs on this host's default host device" in str(info.value)
    assert "declare devices.host in both mocs" in str(info.value)
    whole.release()

    part = take(tmp_path, host("ram"))
    with pytest.raises(ConfigError) as info:
        take(tmp_path, host(), declared=False)
    assert str(info.value).startswith(
        f"device host (host memory) is owned by moc pid {os.getpid()} (claim "
        f"{tmp_path / f'host-{host_identity()}.lock'})"
    )
    part.release()


def test_an_unusable_claim_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(
        ConfigError,
        match=r"^devices\.claim_dir: must be a directory moc can create files in \(got '",
    ):
        take(blocker / "sub", GPU)


def test_the_default_claim_dir_is_the_first_usable_one() -> None:
    chosen = claim_dir(None)
    assert chosen in default_claim_dirs()
    assert os.access(chosen, os.W_OK)
