"""Models under the ledger, end to end: a real ``moc serve`` running real
llama.cpp servers (the xllamacpp runtime) on tiny GGUF models."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import MIB
from tests.integration.support import (
    Factory,
    complete,
    held,
    load,
    metric,
    model,
    runtime_url,
    sized,
    spec,
    start,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("no_stray_runtimes")

# A llama.cpp build's llama-server, for the test of that runtime (not in CI:
# building llama.cpp takes minutes); see the README.
LLAMA_SERVER = os.environ.get("LLAMA_SERVER_BIN")


def test_list_is_openai_shaped_and_shows_each_model(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, sized(tiny_models))
    with httpx.Client(base_url=moc.url) as http:
        listing = http.get("/v1/models").json()
        assert listing["object"] == "list"
        assert [m["id"] for m in listing["data"]] == ["a", "b", "c"]
        first = listing["data"][0]
        assert (first["object"], first["owned_by"], first["state"]) == ("model", "moc", "stopped")
        detail = model(http, "b")
        assert detail["spec"]["path"] == str(tiny_models["b"])
        assert detail["size"]["source"] == "configured"
        assert detail["size"]["bytes"] == 35 * MIB
        assert detail["size"]["estimate"]["weights_bytes"] > 0
        missing = http.get("/v1/models/nope")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "model_not_found"
        assert "known: a, b, c" in missing.json()["error"]["message"]


def test_load_serves_completions_and_unload_frees_everything(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, sized(tiny_models))
    with httpx.Client(base_url=moc.url) as http:
        shown = load(http, "a")
        assert (shown["state"], shown["device"], shown["reserved_bytes"]) == (
            "ready",
            "host",
            30 * MIB,
        )
        assert held(http) == 30 * MIB
        text = complete(runtime_url(shown["pid"]))
        assert len(text) > 0
        assert all(0x20 <= ord(ch) < 0x7F for ch in text)  # the rigged weights: printable only

        gone = http.post("/v1/models/a/unload").json()
        assert (gone["unloaded"], gone["state"]) == (True, "stopped")
        assert (
            not psutil.pid_exists(shown["pid"]) or psutil.Process(shown["pid"]).status() == "zombie"
        )
        assert held(http) == 0
        again = http.post("/v1/models/a/unload").json()
        assert again["unloaded"] is False
        log_file = moc.data_dir / "logs" / "a.log"
        assert "--- moc: starting at" in log_file.read_text()


def test_third_model_evicts_the_idle_one_used_longest_ago(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, sized(tiny_models))
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        time.sleep(1.5)  # a has been idle longer than b will be
        load(http, "b")
        load(http, "c")
        states = {m["id"]: m["state"] for m in http.get("/v1/models").json()["data"]}
        assert states == {"a": "stopped", "b": "ready", "c": "ready"}
        assert held(http) == 75 * MIB
        assert metric(http, "moc_model_evictions_total", model="a", reason="memory") == 1
        assert '"evicting"' in moc.log()


def test_pinned_model_stays_and_another_goes(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    models = sized(tiny_models)
    models[0]["pinned"] = True
    moc = start(moc_factory, models)
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        time.sleep(1.0)
        load(http, "b")
        load(http, "c")
        states = {m["id"]: m["state"] for m in http.get("/v1/models").json()["data"]}
        assert states == {"a": "ready", "b": "stopped", "c": "ready"}


def test_a_model_that_can_never_fit_fails_at_once_and_evicts_nothing(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    models = [*sized(tiny_models), spec(tiny_models, "c", memory="200MiB") | {"name": "huge"}]
    moc = start(moc_factory, models)
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        load(http, "b")
        t0 = time.monotonic()
        refused = http.post("/v1/models/huge/load")
        assert time.monotonic() - t0 < 2.0
        assert refused.status_code == 422
        err = refused.json()["error"]
        assert err["code"] == "exceeds_capacity"
        assert "model huge needs 200.0 MiB" in err["message"]
        assert "holds 90.0 MiB" in err["message"]
        assert err["details"]["bytes_needed"] == 200 * MIB
        assert err["details"]["capacity"] == 90 * MIB
        states = {m["id"]: m["state"] for m in http.get("/v1/models").json()["data"]}
        assert states["a"] == states["b"] == "ready"
        assert metric(http, "moc_model_evictions_total", model="a", reason="memory") == 0


def test_two_callers_share_one_load(moc_factory: Factory, tiny_models: dict[str, Path]) -> None:
    moc = start(moc_factory, sized(tiny_models))
    results: list[dict[str, Any]] = []

    def ask() -> None:
        with httpx.Client(base_url=moc.url) as client:
            results.append(load(client, "b"))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["pid"] for r in results}) == 1
    with httpx.Client(base_url=moc.url) as http:
        assert metric(http, "moc_model_loads_total", model="b", outcome="loaded") == 1
    starts = re.findall(r'"model":"b","old":"stopped","new":"starting"', moc.log())
    assert len(starts) == 1


def test_a_killed_runtime_restarts_and_a_broken_one_ends_degraded(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    own = tmp_path / "own"
    own.mkdir()
    path = Path(shutil.copy(tiny_models["a"], own / "a.gguf"))
    good = path.read_bytes()
    moc = start(
        moc_factory,
        [{"name": "a", "path": str(path), "ctx": 512, "memory": "30MiB"}],
        runtimes={"restart_limit": 2},
    )
    with httpx.Client(base_url=moc.url) as http:
        first = load(http, "a")["pid"]
        psutil.Process(first).kill()
        wait_for(lambda: model(http, "a")["state"] == "ready" and model(http, "a")["pid"] != first)
        assert metric(http, "moc_model_restarts_total", model="a") == 1
        assert complete(runtime_url(model(http, "a")["pid"]))

        path.write_bytes(good[:3000])  # the file breaks under the running model
        psutil.Process(model(http, "a")["pid"]).kill()
        wait_for(lambda: model(http, "a")["state"] == "degraded")
        shown = model(http, "a")
        assert shown["failures"] == 3
        assert "exited with status" in shown["last_error"]
        assert held(http) == 0
        assert metric(http, "moc_model_status", model="a", state="degraded") == 1

        path.write_bytes(good)
        assert load(http, "a")["state"] == "ready"  # an operator's load clears it


def test_a_runtime_that_cannot_start_reports_its_log(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    bad = spec(tiny_models, "a", memory="30MiB", args=["--no-such-flag"])
    moc = start(moc_factory, [bad])
    with httpx.Client(base_url=moc.url) as http:
        refused = http.post("/v1/models/a/load")
        assert refused.status_code == 503
        err = refused.json()["error"]
        assert err["code"] == "load_failed"
        assert "--no-such-flag" in err["message"]
        assert model(http, "a")["state"] == "failed"
        assert held(http) == 0
        assert metric(http, "moc_model_loads_total", model="a", outcome="failed") == 1


def test_idle_models_unload_after_keep_alive(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    models = [
        spec(tiny_models, "a", memory="30MiB", keep_alive="1s"),
        spec(tiny_models, "b", memory="30MiB", keep_alive=-1),
    ]
    moc = start(moc_factory, models)
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        load(http, "b")
        wait_for(lambda: model(http, "a")["state"] == "stopped", timeout=5)
        assert model(http, "b")["state"] == "ready"  # keep_alive < 0: never
        assert metric(http, "moc_model_evictions_total", model="a", reason="idle") == 1


def test_preload_models_load_at_boot(moc_factory: Factory, tiny_models: dict[str, Path]) -> None:
    models = sized(tiny_models)
    models[1]["preload"] = True
    moc = start(moc_factory, models)
    with httpx.Client(base_url=moc.url) as http:
        wait_for(lambda: model(http, "b")["state"] == "ready")
        assert model(http, "a")["state"] == "stopped"


def test_measured_size_replaces_the_estimate_and_is_remembered(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    models = [spec(tiny_models, "a")]
    moc = start(moc_factory, models, size="1GiB")
    with httpx.Client(base_url=moc.url) as http:
        before = model(http, "a")["size"]
        assert before["source"] == "estimated"
        assert before["bytes"] == before["estimate"]["total_bytes"]
        shown = load(http, "a")
        measured = shown["measured_bytes"]
        assert measured is not None
        assert measured > 10 * MIB
        assert shown["reserved_bytes"] == measured
        assert held(http) == measured
        assert shown["size"]["source"] == "measured"
    assert moc.stop() == 0
    moc.start()
    with httpx.Client(base_url=moc.url) as http:
        remembered = model(http, "a")["size"]
        assert remembered["source"] == "measured"
        assert remembered["bytes"] == measured


def test_sigterm_stops_every_runtime(moc_factory: Factory, tiny_models: dict[str, Path]) -> None:
    moc = start(moc_factory, sized(tiny_models))
    with httpx.Client(base_url=moc.url) as http:
        pids = [load(http, "a")["pid"], load(http, "b")["pid"]]
    moc.signal(signal.SIGTERM)
    assert moc.wait() == 0
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_after_kill9_a_healthy_runtime_is_adopted(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, sized(tiny_models))
    with httpx.Client(base_url=moc.url) as http:
        pid = load(http, "a")["pid"]
    moc.kill9()
    assert psutil.Process(pid).is_running()
    moc.start()
    with httpx.Client(base_url=moc.url) as http:
        shown = model(http, "a")
        assert (shown["state"], shown["pid"]) == ("ready", pid)
        assert held(http) == 30 * MIB
        assert complete(runtime_url(pid))
    assert '"runtimes_adopted":1' in moc.log()


def test_after_kill9_a_runtime_whose_spec_changed_is_stopped(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, sized(tiny_models))
    with httpx.Client(base_url=moc.url) as http:
        pid = load(http, "a")["pid"]
    moc.kill9()
    moc.config_path.write_text(moc.config_path.read_text().replace("ctx: 512", "ctx: 1024", 1))
    moc.start()
    with httpx.Client(base_url=moc.url) as http:
        assert model(http, "a")["state"] == "stopped"
        assert held(http) == 0
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie")
    assert '"runtimes_stopped":1' in moc.log()


def test_cli_load_ps_unload(moc_factory: Factory, tiny_models: dict[str, Path]) -> None:
    moc = start(moc_factory, sized(tiny_models))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "moc", *args, "--url", moc.url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    loaded = cli("load", "b")
    assert loaded.returncode == 0, loaded.stderr
    assert "b: ready on host" in loaded.stdout
    assert "35.0 MiB (configured)" in loaded.stdout
    ps = cli("ps")
    assert "b" in ps.stdout
    assert "ready" in ps.stdout
    assert "35.0 MiB" in ps.stdout
    listing = cli("models", "--json")
    assert [m["id"] for m in json.loads(listing.stdout)] == ["a", "b", "c"]
    gone = cli("unload", "b")
    assert gone.stdout.strip() == "b: unloaded"
    missing = cli("load", "zzz")
    assert missing.returncode == 1
    assert "model 'zzz' is not in the catalog" in missing.stderr


def test_out_of_memory_is_counted_and_plans_more_next_time(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    # No GPU here to run out of: a stand-in for llama-server that fails the way
    # llama.cpp's CUDA backend reports it.
    server = tmp_path / "llama-server"
    server.write_text(
        "#!/bin/sh\n"
        "echo 'ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4096.00 MiB on device 0:"
        " cudaMalloc failed: out of memory'\n"
        "exit 1\n"
    )
    server.chmod(0o755)
    moc = start(
        moc_factory,
        [spec(tiny_models, "a")],
        size="1GiB",
        runtimes={"llamacpp": {"server": str(server)}},
    )
    with httpx.Client(base_url=moc.url) as http:
        planned = model(http, "a")["size"]["bytes"]
        refused = http.post("/v1/models/a/load")
        assert refused.status_code == 503
        err = refused.json()["error"]
        assert err["code"] == "load_failed"
        assert err["details"]["out_of_memory"] is True
        assert "cudaMalloc failed: out of memory" in err["message"]
        assert metric(http, "moc_model_ooms_total", model="a") == 1
        after = model(http, "a")["size"]
        assert after["source"] == "measured"
        assert after["bytes"] == int(planned * 1.25)


@pytest.mark.skipif(not LLAMA_SERVER, reason="set LLAMA_SERVER_BIN to a llama-server executable")
def test_the_llama_server_executable_runs_models(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, sized(tiny_models), runtimes={"llamacpp": {"server": LLAMA_SERVER}})
    with httpx.Client(base_url=moc.url) as http:
        shown = load(http, "a")
        assert Path(psutil.Process(shown["pid"]).cmdline()[0]).name == "llama-server"
        text = complete(runtime_url(shown["pid"]))
        assert all(0x20 <= ord(ch) < 0x7F for ch in text)
        assert http.post("/v1/models/a/unload").json()["unloaded"] is True


def test_without_systemd_units_and_limits_run_a_plain_process_and_say_so_once(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    models = [spec(tiny_models, n, memory_max="256MiB", cpu_quota="100%") for n in ("a", "b")]
    models.append(spec(tiny_models, "c", service_unit="moc-test-c.service"))
    moc = start(moc_factory, models, size="1GiB")
    with httpx.Client(base_url=moc.url) as http:
        for name in ("a", "b", "c"):
            assert complete(runtime_url(load(http, name)["pid"]))
    assert moc.log().count("service_unit, memory_max and cpu_quota are not applied") == 1


def test_limits_with_systemd_run_the_runtime_in_a_scope(
    moc_factory: Factory,
    tiny_models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # systemd's user manager does not run here: stand-ins for its two tools,
    # with their documented command lines. systemd-run executes the command
    # in place once the scope exists, so the stand-in records and execs.
    tools = tmp_path / "bin"
    tools.mkdir()
    record = tmp_path / "systemd-run.args"
    (tools / "systemctl").write_text('#!/bin/sh\n[ "$*" = "--user show-environment" ]\n')
    (tools / "systemd-run").write_text(
        f'#!/bin/sh\necho "$*" > {record}\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n'
    )
    for tool in tools.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    moc = start(moc_factory, [spec(tiny_models, "a", memory_max="256MiB", cpu_quota="150%")])
    with httpx.Client(base_url=moc.url) as http:
        shown = load(http, "a")
        assert complete(runtime_url(shown["pid"]))
        argv = record.read_text().split()
        assert argv[:4] == ["--user", "--scope", "--quiet", "--collect"]
        assert re.fullmatch(r"--unit=moc-a-\d+\.scope", argv[4])
        assert ["-p", f"MemoryMax={256 * MIB}", "-p", "CPUQuota=150%", "--"] == argv[5:10]
        assert argv[10:12] == [sys.executable, "-m"]  # the runtime's own argv follows
        assert psutil.Process(shown["pid"]).cmdline()[:3] == [
            sys.executable,
            "-m",
            "moc.backends.xllamacpp_server",
        ]
    assert "not applied" not in moc.log()


def _fake_systemd(tools: Path, state: Path) -> None:
    """Stand-ins for systemd's two commands, doing what their manuals say
    they do for a transient user service: systemd-run starts the command
    detached and returns; systemctl shows its MainPID and stops it."""
    tools.mkdir()
    state.mkdir()
    (tools / "systemd-run").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {state}/run.args\n'
        'for a in "$@"; do case "$a" in --unit=*) unit="${a#--unit=}";; esac; done\n'
        'while [ "$1" != "--" ]; do shift; done\nshift\n'
        f'setsid "$@" >/dev/null 2>&1 < /dev/null &\necho $! > {state}/"$unit".pid\n'
    )
    (tools / "systemctl").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {state}/ctl.args\n'
        'case "$*" in\n'
        '  "--user show-environment") exit 0;;\n'
        f'  "--user show --property=MainPID --value "*) cat {state}/"$5".pid;;\n'
        f'  "--user stop "*) pid=$(cat {state}/"$3".pid); kill "$pid";'
        ' while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done;;\n'
        "  *) exit 1;;\n"
        "esac\n"
    )
    for tool in tools.iterdir():
        tool.chmod(0o755)


def test_a_service_unit_is_started_and_stopped_through_systemd(
    moc_factory: Factory,
    tiny_models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "systemd"
    _fake_systemd(tmp_path / "bin", state)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    moc = start(moc_factory, [spec(tiny_models, "a", service_unit="llm-a.service")])
    with httpx.Client(base_url=moc.url) as http:
        pid = load(http, "a")["pid"]
        assert pid == int((state / "llm-a.service.pid").read_text())
        assert complete(runtime_url(pid))
        run = (state / "run.args").read_text().split()
        assert run[:5] == [
            "--user",
            "--quiet",
            "--collect",
            "--service-type=exec",
            "--unit=llm-a.service",
        ]
        assert http.post("/v1/models/a/unload").json()["unloaded"] is True
        assert "--user stop llm-a.service" in (state / "ctl.args").read_text()
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
