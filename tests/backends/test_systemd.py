"""Confining runtimes with systemd: the command, and the fallback without it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from moc.backends.launch import Launch
from moc.backends.systemd import Systemd, scope_argv, service_argv, unit_name
from moc.models.spec import ModelSpec

LAUNCH = Launch(("llama-server", "--model", "m.gguf", "--port", "4100"), {}, 4100)


def spec(**kw: object) -> ModelSpec:
    return ModelSpec.model_validate({"name": "qwen/7b:q4", "path": "m.gguf", **kw})


def test_the_scope_command_carries_both_limits() -> None:
    assert scope_argv("moc-a-1.scope", 8 << 30, "200%") == (
        "systemd-run",
        "--user",
        "--scope",
        "--quiet",
        "--collect",
        "--unit=moc-a-1.scope",
        "-p",
        f"MemoryMax={8 << 30}",
        "-p",
        "CPUQuota=200%",
        "--",
    )
    assert "-p" not in scope_argv("u.scope", None, None)


def test_unit_names_are_safe_and_unique_per_start() -> None:
    assert unit_name("qwen/7b:q4", 4100) == "moc-qwen_7b_q4-4100.scope"
    assert unit_name("a", 1) != unit_name("a", 2)


def test_with_systemd_the_runtime_runs_in_a_scope() -> None:
    confined = Systemd(available=True).confine(LAUNCH, spec(memory_max="2GiB", cpu_quota="150%"))
    prefix = scope_argv("moc-qwen_7b_q4-4100.scope", 2 << 30, "150%")
    assert confined.argv == (*prefix, *LAUNCH.argv)

    assert (confined.env, confined.port) == (LAUNCH.env, LAUNCH.port)


def test_without_limits_nothing_changes() -> None:
    assert Systemd(available=True).confine(LAUNCH, spec()) is LAUNCH


def test_without_systemd_it_runs_plain_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    systemd = Systemd(available=False)
    with caplog.at_level(logging.WARNING, logger="moc.backends.systemd"):
        first = systemd.confine(LAUNCH, spec(memory_max="1GiB"))
        second = systemd.confine(LAUNCH, spec(cpu_quota="50%"))
    assert first is LAUNCH
    assert second is LAUNCH
    assert len([r for r in caplog.records if "not applied" in r.getMessage()]) == 1


def test_this_machine_is_asked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    for name, body in (("systemctl", "exit 0"), ("systemd-run", "exit 0")):
        tool = tmp_path / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n{body}\n')
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    systemd = Systemd()
    assert systemd.available()
    assert systemd.available()
    assert calls.read_text().splitlines() == ["systemctl --user show-environment"]


def test_a_service_unit_runs_the_runtime_as_that_service() -> None:
    wanted = spec(service_unit="llm-qwen.service", memory_max="1GiB")
    confined = Systemd(available=True).confine(LAUNCH, wanted)
    assert confined.unit == "llm-qwen.service"
    assert confined.argv == (
        "systemd-run",
        "--user",
        "--quiet",
        "--collect",
        "--service-type=exec",
        "--unit=llm-qwen.service",
        "-p",
        f"MemoryMax={1 << 30}",
        "--",
        *LAUNCH.argv,
    )
    assert Systemd(available=False).confine(LAUNCH, wanted) is LAUNCH
    assert service_argv("u.service", None, "20%")[-3:] == ("-p", "CPUQuota=20%", "--")
