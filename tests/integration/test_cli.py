"""The ``moc`` command against a real ``moc serve``."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import MIB, MocProcess


def run(server: MocProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moc", *args, "--url", server.url],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_lease_commands(server: MocProcess) -> None:
    acquired = run(
        server,
        "lease",
        "acquire",
        "--size",
        "64MiB",
        "--ttl",
        "60",
        "--holder",
        "cli-test",
        "--json",
    )
    assert acquired.returncode == 0, acquired.stderr
    lease = json.loads(acquired.stdout)
    assert lease["bytes"] == 64 * MIB

    table = run(server, "lease", "list")
    assert table.returncode == 0
    assert lease["id"] in table.stdout
    assert "64.0 MiB" in table.stdout
    listed = json.loads(run(server, "lease", "list", "--json").stdout)
    assert [l["id"] for l in listed] == [lease["id"]]

    renewed = run(server, "lease", "renew", lease["id"], "--ttl", "90")
    assert renewed.returncode == 0
    assert "renewed" in renewed.stdout

    released = run(server, "lease", "release", lease["id"])
    assert released.returncode == 0
    assert "released" in released.stdout

    again = run(server, "lease", "release", lease["id"])
    assert again.returncode == 1
    assert "lease_released" in again.stderr
    assert "Traceback" not in again.stderr


def test_devices_table_and_json(server: MocProcess) -> None:
    table = run(server, "devices")
    assert table.returncode == 0
    assert "host" in table.stdout
    assert "CAPACITY" in table.stdout
    (device,) = json.loads(run(server, "devices", "--json").stdout)
    assert device["capacity_bytes"] == int(1024 * MIB * 0.9)


def test_cli_errors_are_one_clear_line(server: MocProcess) -> None:
    too_big = run(server, "lease", "acquire", "--size", "64GiB")
    assert too_big.returncode == 1
    assert "exceeds_capacity" in too_big.stderr
    bad_size = run(server, "lease", "acquire", "--size", "lots")
    assert bad_size.returncode == 2
    assert "expected a size such as 8GiB" in bad_size.stderr
    assert "Traceback" not in too_big.stderr + bad_size.stderr
