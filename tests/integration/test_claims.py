"""Two ``moc serve`` processes on one host: they never share a device or a port."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from moc.devices.claim import claim_dir, host_identity
from tests.conftest import MocProcess
from tests.integration.test_faults import FAKE_PYNVML


def host_device(device_id: str, size: str = "256MiB") -> dict[str, Any]:
    return {"devices": {"host": [{"id": device_id, "size": size}]}}


def refused(proc: MocProcess) -> str:
    """Start ``proc`` expecting it to stop with exit code 2; its output."""
    with pytest.raises(RuntimeError):
        proc.start()
    assert proc.proc is not None
    assert proc.proc.returncode == 2, proc.log()
    assert "Traceback" not in proc.log()
    return proc.log()


def pid(proc: MocProcess) -> int:
    assert proc.proc is not None
    return proc.proc.pid


def test_a_second_moc_on_the_same_device_names_the_first(moc_factory: Any) -> None:
    first: MocProcess = moc_factory(host_device("ram"), name="a").start()
    second: MocProcess = moc_factory(host_device("ram"), name="b")
    log = refused(second)
    assert f"moc: device ram (host memory) is owned by moc pid {pid(first)}" in log

    # A claim dies with its process: kill -9 leaves nothing to clean up.
    first.kill9()
    second.start()


def test_a_gpu_serves_one_moc(
    moc_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both daemons see the same (fake) GPU through NVML: the second one refuses it."""
    shim, state = tmp_path / "shim", tmp_path / "nvml"
    shim.mkdir()
    state.mkdir()
    (shim / "pynvml.py").write_text(FAKE_PYNVML)
    (state / "used").write_text("0")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_NVML_REPO", str(Path(__file__).parents[2]))
    monkeypatch.setenv("FAKE_NVML_STATE", str(state))
    gpu_only = {"devices": {"nvml": "on", "host": []}}
    first: MocProcess = moc_factory(gpu_only, name="a").start()
    log = refused(moc_factory(gpu_only, name="b"))
    assert (
        f"moc: device gpu0 (NVIDIA Fake, GPU-00000000-fake) is owned by moc pid {pid(first)}"
    ) in log


def test_mocs_with_disjoint_host_devices_run_side_by_side(moc_factory: Any) -> None:
    a: MocProcess = moc_factory(host_device("ram-a"), name="a").start()
    b: MocProcess = moc_factory(host_device("ram-b"), name="b").start()
    for proc, device in ((a, "ram-a"), (b, "ram-b")):
        lease = httpx.post(f"{proc.url}/v1/leases", json={"mb": 64, "ttl_s": 30}, timeout=5)
        assert lease.status_code in (200, 201), lease.text
        assert lease.json()["device"] == device


def test_the_default_host_device_excludes_declared_ones(moc_factory: Any) -> None:
    whole: MocProcess = moc_factory({"devices": {"host": []}}, name="whole").start()
    log = refused(moc_factory(host_device("ram"), name="part"))
    assert f"moc pid {pid(whole)} runs on this host's default host device" in log


def test_a_grpc_port_in_use_by_another_moc_stops_startup(moc_factory: Any) -> None:
    """gRPC's default SO_REUSEPORT let a second moc share the port and half the
    lease requests went to its ledger."""
    first: MocProcess = moc_factory(host_device("ram-a"), name="a").start()
    second: MocProcess = moc_factory(host_device("ram-b"), name="b")
    second.grpc_port = first.grpc_port
    log = refused(second)
    assert f"cannot bind gRPC to 127.0.0.1:{first.grpc_port}" in log
    assert "--grpc-port" in log


def test_the_default_claim_dir_is_shared_by_every_moc(
    moc_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOC_DEVICES__CLAIM_DIR")
    # A device id of its own, so a real moc on this host cannot collide with the test.
    device = f"test-{uuid.uuid4().hex[:12]}"
    config = {"devices": {"claim_dir": None, "host": [{"id": device, "size": "64MiB"}]}}
    first: MocProcess = moc_factory(config, name="a").start()
    claim = claim_dir(None) / f"host-{host_identity()}-{device}.lock"
    assert claim.read_text().strip() == str(pid(first))
    log = refused(moc_factory(config, name="b"))
    assert f"device {device} (host memory) is owned by moc pid {pid(first)} (claim {claim})" in log
    assert first.stop() == 0
    claim.unlink()  # a file per test run would otherwise pile up in the host's claim dir
