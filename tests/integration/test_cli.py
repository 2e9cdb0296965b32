"""The ``moc`` command against a real ``moc serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests.conftest import MIB, MocProcess


def run(server: MocProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``moc ARGS`` as a user at an 80-column terminal would run it."""
    return subprocess.run(
        [sys.executable, "-m", "moc", *args, "--url", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "80"},
    )


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    found = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in found), result.stdout
    return found


def row(table: list[str], first: str) -> list[str]:
    (found,) = [line.split() for line in table[1:] if line.split()[0] == first]
    return found


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


def test_models_and_ps_share_one_style_and_one_line_per_model(server: MocProcess) -> None:
    models = lines(run(server, "models"))
    assert models[0].split() == [
        "MODEL", "BACKEND", "STATE", "DEVICE", "HELD", "USED", "KEEP", "ALIVE", "PINNED"
    ]  # fmt: skip
    assert len(models) == 1 + len(httpx.get(f"{server.url}/v1/models").json()["data"])

    loaded = lines(run(server, "load", "tiny-chat"))
    assert loaded[0] == "tiny-chat: ready on host"
    assert [line.split()[0] for line in loaded[1:]] == ["reserves", "estimate", "+", "measured"]

    ps = lines(run(server, "ps"))
    assert ps[0].split() == [
        "MODEL",
        "STATE",
        "DEVICE",
        "EST",
        "HELD",
        "USED",
        "BUSY",
        "UNLOAD",
        "IN",
    ]
    assert row(ps, "tiny-chat")[:3] == ["tiny-chat", "ready", "host"]
    # One style: flush left, two spaces between columns.
    for table in (models, ps):
        assert table[0].startswith("MODEL      ")
        assert table[1].startswith("tiny-")

    assert run(server, "unload", "tiny-chat").returncode == 0
    assert row(lines(run(server, "models")), "tiny-chat")[2:5] == ["stopped", "-", "-"]


def test_submit_no_wait_prints_the_job_ids(server: MocProcess) -> None:
    result = run(server, "submit", "--no-wait", "--batch", "--max-tokens", "2")
    ids = lines(result)
    assert len(ids) == 4
    assert "submitted 4 jobs" in result.stderr
    for job_id in ids:
        assert httpx.get(f"{server.url}/v1/jobs/{job_id}").status_code == 200
