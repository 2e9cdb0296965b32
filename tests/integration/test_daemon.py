"""Starting, stopping and restarting ``moc serve``: persistence across kill -9,
clean shutdown on signals, and clear startup errors."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import MIB, MocProcess, free_port


def serve_args(*extra: str) -> list[str]:
    return [sys.executable, "-m", "moc", "serve", *extra]


def run_serve(*extra: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        serve_args(*extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_leases_survive_kill_9_with_their_remaining_ttl(moc_factory: Any) -> None:
    first: MocProcess = moc_factory().start()
    with httpx.Client(base_url=first.url, timeout=5) as http:
        live = http.post("/v1/leases", json={"mb": 100, "ttl_s": 60, "holder": "k"}).json()
        short = http.post("/v1/leases", json={"mb": 100, "ttl_s": 1}).json()
        gone = http.post("/v1/leases", json={"mb": 100}).json()
        http.delete(f"/v1/leases/{gone['id']}")
    first.kill9()
    time.sleep(1.5)  # the short lease's TTL runs out while moc is down

    second: MocProcess = moc_factory()
    second.data_dir = first.data_dir
    second.start()
    with httpx.Client(base_url=second.url, timeout=5) as http:
        check_restored(http, live, short, gone)
    assert '"leases_restored":1' in second.log()
    assert '"expired_while_down":1' in second.log()


def check_restored(http: httpx.Client, live: Any, short: Any, gone: Any) -> None:
    leases = http.get("/v1/leases").json()["leases"]
    assert [l["id"] for l in leases] == [live["id"]]
    (restored,) = leases
    assert restored["fencing_token"] == live["fencing_token"]
    assert restored["expires_at"] == live["expires_at"]
    assert 50 < restored["expires_in_s"] < 59
    assert http.get("/v1/devices/host").json()["held_bytes"] == 100 * MIB
    expired = http.post(f"/v1/leases/{short['id']}/renew").json()["error"]
    assert expired["code"] == "lease_expired"
    released = http.post(f"/v1/leases/{gone['id']}/renew").json()["error"]
    assert released["code"] == "lease_released"
    fresh = http.post("/v1/leases", json={"bytes": 1}).json()
    assert fresh["fencing_token"] > max(
        live["fencing_token"], short["fencing_token"], gone["fencing_token"]
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_turns_waiters_away(
    moc_factory: Any, sig: int, request: pytest.FixtureRequest
) -> None:
    proc: MocProcess = moc_factory().start()
    http = httpx.Client(base_url=proc.url, timeout=10)
    http.post("/v1/leases", json={"mb": 900, "ttl_s": 600})
    request.addfinalizer(http.close)
    answer: dict[str, Any] = {}

    def wait_for_memory() -> None:
        r = httpx.post(f"{proc.url}/v1/leases", json={"mb": 500, "wait_s": 60}, timeout=30)
        answer["status"], answer["body"] = r.status_code, r.json()

    waiter = threading.Thread(target=wait_for_memory)
    waiter.start()
    deadline = time.monotonic() + 5
    while http.get("/v1/leases").json()["waiting"] != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    proc.signal(sig)
    assert proc.wait(15) == 0
    assert time.monotonic() - t0 < 5
    waiter.join(5)
    assert answer["status"] == 503
    assert answer["body"]["error"]["code"] == "shutting_down"
    log = proc.log()
    assert '"event":"moc stopped"' in log
    assert '"waiting_turned_away":1' in log
    assert '"leases_persisted":1' in log
    assert "Traceback" not in log


def test_runs_with_no_config_file(tmp_path: Path) -> None:
    """The README's first command: no file, no GPU, everything from defaults."""
    http_port, grpc_port = free_port(), free_port()
    proc = subprocess.Popen(
        serve_args(
            "--data-dir",
            str(tmp_path / "d"),
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                devices = httpx.get(f"http://127.0.0.1:{http_port}/v1/devices").json()["devices"]
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                assert proc.poll() is None
                time.sleep(0.1)
        ids = [d["id"] for d in devices]
        if not any(d["kind"] == "nvidia" for d in devices):
            assert ids == ["host"]
            half = psutil.virtual_memory().total / 2
            assert abs(devices[0]["total_bytes"] - half) <= MIB
        assert (tmp_path / "d" / "moc.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out


def test_port_in_use_is_a_clear_startup_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(
            "--data-dir", str(tmp_path / "d"), "--http-port", str(port), "--grpc-port", "0"
        )
    assert result.returncode == 2
    assert f"cannot listen for HTTP on 127.0.0.1:{port}" in result.stderr
    assert "--http-port" in result.stderr
    assert "Traceback" not in result.stderr


def test_grpc_port_in_use_is_a_clear_startup_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(
            "--data-dir",
            str(tmp_path / "d"),
            "--http-port",
            str(free_port()),
            "--grpc-port",
            str(port),
        )
    assert result.returncode == 2
    assert f"cannot bind gRPC to 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_data_dir_serves_one_moc(moc_factory: Any) -> None:
    first: MocProcess = moc_factory().start()
    result = run_serve(
        "--data-dir", str(first.data_dir), "--http-port", str(free_port()), "--grpc-port", "0"
    )
    assert result.returncode == 2
    assert f"in use by moc pid {first.proc.pid}" in result.stderr  # type: ignore[union-attr]


def test_config_typo_fails_at_startup_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "moc.yaml"
    config.write_text("leases:\n  default_ttl: 30\n")
    result = run_serve("--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert "leases.default_ttl: unknown field" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("yaml_text", "line"),
    [
        (
            "devices:\n  host: [{id: ram, size: 8G}]\n",
            "devices.host[ram].size: expected a size such as 8GiB or 512MB (units: B, KB, MB, "
            "GB, TB, KiB, MiB, GiB, TiB), got '8G'",
        ),
        ("server:\n  http_port: 70000\n", "server.http_port: must be at most 65535 (got 70000)"),
        (
            "models:\n  - {name: big, path: /m/big.gguf, ctx: 10}\n",
            "models[big].ctx: must be at least 64 (got 10)",
        ),
        ("devices:\n  nvml: maybe\n", "devices.nvml: must be 'auto', 'on' or 'off' (got 'maybe')"),
    ],
)
def test_a_bad_config_stops_serve_with_one_clean_line(
    tmp_path: Path, yaml_text: str, line: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    result = run_serve("--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"moc: invalid configuration ({config}):", f"  {line}"]
    assert result.stdout == ""


def test_nvml_off_as_the_docs_write_it_is_accepted(tmp_path: Path) -> None:
    """YAML reads a bare `off` as false; moc must still take it as off."""
    config = tmp_path / "moc.yaml"
    config.write_text("devices:\n  nvml: off\n  host: [{id: ram, size: 64MiB}]\n")
    proc = MocProcess(tmp_path / "d")
    proc.config_path = config
    proc.start()
    try:
        devices = httpx.get(f"{proc.url}/v1/devices").json()["devices"]
        assert [(d["id"], d["kind"]) for d in devices] == [("ram", "host")]
    finally:
        assert proc.stop() == 0, proc.log()


def test_unwritable_data_dir_is_a_clear_startup_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_serve("--data-dir", str(blocker / "sub"))
    assert result.returncode == 2
    assert "data_dir: cannot use" in result.stderr
