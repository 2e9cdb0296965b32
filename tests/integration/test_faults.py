"""Faults injected into a real ``moc serve`` and its real llama.cpp runtimes.

Each test's docstring is the expectation, written down before the fault is
tried; docs/reliability.md collects them. Faults already covered elsewhere
(runtime killed, moc killed with a ready runtime, jobs across kill -9, ports
taken) are in test_daemon.py, test_models.py and test_gateway.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import MIB, MocProcess, runtimes_using
from tests.integration.support import (
    Factory,
    chat,
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

# Tiny models write about a thousand tokens a second on two cores.
LONG = {"max_tokens": 3000, "ignore_eos": True}


def ask(url: str, name: str, timeout: float = 30, **extra: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=chat(name, **extra), timeout=timeout)


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def counted_once(http: httpx.Client, leases: int = 0) -> None:
    """The device holds exactly the listed models' reservations plus ``leases``
    bytes: nothing counted twice, nothing left over."""
    models = http.get("/v1/models").json()["data"]
    reserved = sum(m["reserved_bytes"] or 0 for m in models if m["state"] != "stopped")
    device = http.get("/v1/devices/host").json()
    assert device["held_bytes"] == reserved + leases, (device, models)
    assert device["reservations"] == sum(1 for m in models if m["reserved_bytes"])


def slow_start_server(tmp_path: Path, delay_s: float) -> tuple[Path, Path]:
    """A llama.cpp server that first sleeps ``delay_s`` while ``flag`` exists:
    a load that is in progress for as long as a test needs."""
    flag = tmp_path / "slow"
    wrapper = tmp_path / "slow-server.sh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"[ -e {flag} ] && sleep {delay_s}\n"
        f'exec {sys.executable} -m moc.backends.xllamacpp_server "$@"\n'
    )
    wrapper.chmod(0o755)
    flag.touch()
    return wrapper, flag


def in_background(fn: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """Run ``fn`` in a daemon thread; its result or exception lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn(*args, **kwargs))
        except Exception as exc:
            out.append(exc)

    threading.Thread(target=run, daemon=True).start()
    return out


def restart(moc: MocProcess) -> httpx.Client:
    moc.start()
    return httpx.Client(base_url=moc.url, timeout=30)


# --- kill -9 of moc -------------------------------------------------------------------
@pytest.mark.parametrize("runtime_ready", [False, True], ids=["still-starting", "ready-meanwhile"])
def test_kill9_during_a_model_load(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path, runtime_ready: bool
) -> None:
    """moc killed while a runtime it started is still loading: after the restart
    that runtime is stopped if it is not healthy yet, or adopted if it became
    healthy meanwhile; no runtime is left running un-owned, the ledger counts
    the model once, and the model loads and answers."""
    wrapper, flag = slow_start_server(tmp_path, 30)
    moc = start(moc_factory, sized(tiny_models), runtimes={"llamacpp": {"server": str(wrapper)}})
    with httpx.Client(base_url=moc.url, timeout=10) as http:
        in_background(httpx.post, f"{moc.url}/v1/models/a/load", timeout=60)
        wait_for(lambda: model(http, "a")["state"] == "starting")
        pid = model(http, "a")["pid"]
    moc.kill9()
    flag.unlink()  # later starts are quick
    if runtime_ready:  # cut the wait short: the runtime comes up while moc is down
        wait_for(lambda: bool(psutil.Process(pid).children()))
        for sleeper in psutil.Process(pid).children():
            sleeper.kill()
        url = runtime_url(pid)
        wait_for(lambda: healthy(url), timeout=20)
    with restart(moc) as http:
        if runtime_ready:
            assert '"runtimes_adopted":1' in moc.log()
            shown = model(http, "a")
            assert (shown["state"], shown["pid"], shown["reserved_bytes"]) == (
                "ready",
                pid,
                30 * MIB,
            )
        else:
            assert '"runtimes_stopped":1' in moc.log()
            wait_for(lambda: gone(pid))
            assert model(http, "a")["state"] == "stopped"
            assert held(http) == 0
        counted_once(http)
        shown = load(http, "a")
        assert ask(moc.url, "a").status_code == 200
        assert held(http) == 30 * MIB
        counted_once(http)
        owned = {shown["pid"]}
    # Every runtime serving a tiny model now is the one moc shows.
    assert {p.pid for p in _runtimes(tiny_models)} == owned


def _runtimes(tiny_models: dict[str, Path]) -> list[psutil.Process]:
    return [p for p in runtimes_using(tiny_models["a"].parent) if not gone(p.pid)]


def test_kill9_during_streaming(moc_factory: Factory, tiny_models: dict[str, Path]) -> None:
    """moc killed while it streams an answer: the client's stream ends with a
    connection error at once rather than hanging; after the restart the runtime
    is adopted, its memory counted once, and a new stream works."""
    moc = start(moc_factory, [spec(tiny_models, "a", ctx=4096, memory="30MiB")])
    with httpx.Client(base_url=moc.url, timeout=10) as http:
        pid = load(http, "a")["pid"]
    body = chat("a", stream=True, **LONG)
    with httpx.stream("POST", f"{moc.url}/v1/chat/completions", json=body, timeout=10) as r:
        chunks = r.iter_raw()
        assert next(chunks).startswith(b"data: ")
        moc.kill9()
        t0 = time.monotonic()
        with pytest.raises(httpx.TransportError):
            b"".join(chunks)
        assert time.monotonic() - t0 < 5
    assert not gone(pid)  # the runtime outlives moc
    with restart(moc) as http:
        assert '"runtimes_adopted":1' in moc.log()
        assert (model(http, "a")["state"], model(http, "a")["pid"]) == ("ready", pid)
        counted_once(http)
        assert held(http) == 30 * MIB
        with httpx.stream(
            "POST", f"{moc.url}/v1/chat/completions", json=chat("a", stream=True), timeout=10
        ) as r:
            text = b"".join(r.iter_raw())
        assert r.status_code == 200
        assert text.rstrip().endswith(b"data: [DONE]")


def test_kill9_with_leases_held_and_jobs_queued(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    """moc killed with leases held and jobs running and queued: after the
    restart every lease is there with its id, size, fencing token and deadline
    (the remaining TTL keeps running down), every job completes, and leases and
    the model are each counted once."""
    moc = start(
        moc_factory,
        [spec(tiny_models, "a", ctx=4096, memory="30MiB")],
        gateway={"max_in_flight": 1},
    )
    with httpx.Client(base_url=moc.url, timeout=10) as http:
        load(http, "a")
        leases = [
            http.post("/v1/leases", json={"mb": mb, "ttl_s": 60, "holder": f"h{mb}"}).json()
            for mb in (20, 10)
        ]
        submit = {"model": "a", "prompt": "hi", "options": {"max_tokens": 4}}
        running = {"max_tokens": 1000, "ignore_eos": True}
        jobs = [http.post("/v1/jobs", json={**submit, "options": running}).json()["job_id"]]
        jobs += [http.post("/v1/jobs", json=submit).json()["job_id"] for _ in range(3)]
        wait_for(lambda: http.get(f"/v1/jobs/{jobs[0]}").json()["status"] == "running")
        assert held(http) == 60 * MIB
    moc.kill9()
    with restart(moc) as http:
        restored = {lease["id"]: lease for lease in http.get("/v1/leases").json()["leases"]}
        assert sorted(restored) == sorted(lease["id"] for lease in leases)
        for before in leases:
            after = restored[before["id"]]
            for key in ("bytes", "holder", "fencing_token", "expires_at", "device"):
                assert after[key] == before[key], key
            assert 0 < after["expires_in_s"] < before["expires_in_s"]
        counted_once(http, leases=30 * MIB)
        assert held(http) == 60 * MIB

        def done() -> bool:
            return all(http.get(f"/v1/jobs/{j}").json()["status"] == "complete" for j in jobs)

        wait_for(done, timeout=60)
        counted_once(http, leases=30 * MIB)


# --- runtimes that misbehave ------------------------------------------------------------
def test_a_backend_that_never_becomes_ready(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """A runtime that starts but never serves: its load fails after
    ``runtimes.llamacpp.ready_timeout_s`` with load_failed naming the model and
    the timeout, the process is stopped, its reservation is released, and a
    loaded model answers all along."""
    wrapper = tmp_path / "hanging-server.sh"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in *"--alias b "*) exec sleep 600;; esac\n'
        f'exec {sys.executable} -m moc.backends.xllamacpp_server "$@"\n'
    )
    wrapper.chmod(0o755)
    moc = start(
        moc_factory,
        sized(tiny_models),
        runtimes={"llamacpp": {"server": str(wrapper), "ready_timeout_s": 2}},
    )
    with httpx.Client(base_url=moc.url, timeout=30) as http:
        load(http, "a")
        t0 = time.monotonic()
        hung = in_background(httpx.post, f"{moc.url}/v1/models/b/load", timeout=30)
        wait_for(lambda: model(http, "b")["state"] == "starting")
        pid = model(http, "b")["pid"]
        assert held(http) == 65 * MIB  # b's reservation is taken while it starts
        while not hung:
            assert ask(moc.url, "a").status_code == 200
            time.sleep(0.1)
        took = time.monotonic() - t0
        refused = hung[0]
        assert refused.status_code == 503, refused.text
        err = refused.json()["error"]
        assert err["code"] == "load_failed"
        assert "model b: did not become ready within 2 s" in err["message"]
        assert 2 <= took < 6
        assert model(http, "b")["state"] == "failed"
        assert gone(pid)
        assert held(http) == 30 * MIB
        counted_once(http)
        assert ask(moc.url, "a").status_code == 200


def test_a_backend_that_stops_answering(moc_factory: Factory, tiny_models: dict[str, Path]) -> None:
    """A runtime frozen mid-request (SIGSTOP): the request fails within
    ``gateway.upstream_timeout_s`` with 504 upstream_timeout, is not sent again
    to the frozen runtime, and counts against the breaker (here: opens it); a
    stream stalled the same way ends with an error event; once the runtime
    runs again (SIGCONT), requests are answered again."""
    moc = start(
        moc_factory,
        [spec(tiny_models, "a", ctx=4096, memory="30MiB")],
        gateway={"upstream_timeout_s": 1.5, "breaker_failures": 1, "breaker_open_s": 1},
    )
    with httpx.Client(base_url=moc.url, timeout=30) as http:
        pid = load(http, "a")["pid"]
        try:
            os.kill(pid, signal.SIGSTOP)
            t0 = time.monotonic()
            stuck = ask(moc.url, "a")
            took = time.monotonic() - t0
            assert stuck.status_code == 504, stuck.text
            err = stuck.json()["error"]
            assert (err["code"], err["src"]) == ("upstream_timeout", "moc")
            assert "model a" in err["message"]
            assert "1.5 s" in err["message"]
            assert 1.4 < took < 3.5
            assert metric(http, "moc_breaker_state", model="a") == 1
            assert metric(http, "moc_requests_retried_total", model="a") == 0
            fast = ask(moc.url, "a")
            assert fast.json()["error"]["code"] == "circuit_open"
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)  # the breaker lets one probe through after breaker_open_s
        assert ask(moc.url, "a").status_code == 200
        assert metric(http, "moc_breaker_state", model="a") == 0

        # Frozen after the stream began: an error event ends it, in time.
        body = chat("a", stream=True, **LONG)
        with httpx.stream("POST", f"{moc.url}/v1/chat/completions", json=body) as r:
            chunks = r.iter_raw()
            next(chunks)
            try:
                os.kill(pid, signal.SIGSTOP)
                t0 = time.monotonic()
                rest = b"".join(chunks)
                took = time.monotonic() - t0
            finally:
                os.kill(pid, signal.SIGCONT)
        assert b'"code":"upstream_timeout"' in rest
        assert rest.endswith(b"data: [DONE]\n\n")
        assert took < 4
        assert model(http, "a")["pid"] == pid  # frozen, not dead: no restart
        time.sleep(1.0)
        assert ask(moc.url, "a").status_code == 200


# --- model files ------------------------------------------------------------------------
def _corrupt(kind: str, good: bytes) -> bytes:
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "gguf-magic-random-bytes":
        return b"GGUF" + (3).to_bytes(4, "little") + random.Random(7).randbytes(len(good))
    return b"#!/bin/sh\necho this is not a model\n" * 100


@pytest.mark.parametrize("kind", ["truncated", "gguf-magic-random-bytes", "not-gguf"])
def test_a_corrupt_model_file(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    """A model whose file is corrupt: its load is refused with model_file_invalid
    naming the model and the file, as 422 without Retry-After (no retry can
    succeed until the file changes); nothing is reserved, no runtime is started,
    the failure is shown in the model's view, every model is still listed, a
    warning is logged at startup, and the other models load and answer."""
    bad_file = tmp_path / "bad.gguf"
    bad_file.write_bytes(_corrupt(kind, tiny_models["a"].read_bytes()))
    bad = {"name": "bad", "path": str(bad_file), "ctx": 512}
    moc = start(moc_factory, [spec(tiny_models, "a", memory="30MiB"), bad])
    with httpx.Client(base_url=moc.url, timeout=30) as http:
        for attempt in (http.post("/v1/models/bad/load"), ask(moc.url, "bad")):
            assert attempt.status_code == 422, attempt.text
            assert "retry-after" not in attempt.headers
            err = attempt.json()["error"]
            assert err["code"] == "model_file_invalid"
            assert f"model bad: {bad_file}: not a readable GGUF file" in err["message"]
            assert held(http) == 0
            assert runtimes_using(tmp_path) == []
        assert [m["id"] for m in http.get("/v1/models").json()["data"]] == ["a", "bad"]
        shown = model(http, "bad")
        assert shown["state"] == "stopped"
        assert "not a readable GGUF file" in shown["last_error"]
        assert "model file cannot load" in moc.log()
        ps = subprocess.run(
            [sys.executable, "-m", "moc", "ps", "--url", moc.url],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert ps.returncode == 0, ps.stderr
        assert ps.stdout.splitlines()[1].split()[:2] == ["bad", "stopped"]
        assert f"bad: model bad: {bad_file}: not a readable GGUF file" in ps.stdout
        assert load(http, "a")["state"] == "ready"
        assert ask(moc.url, "a").status_code == 200
        counted_once(http)


# --- the data directory -----------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its filesystem has no space left."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 512):
            with contextlib.suppress(OSError):
                while f.write(b"\0" * chunk):
                    pass
    return filler


def test_a_full_disk_refuses_what_cannot_be_stored(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """The data dir's filesystem fills up: lease requests and job submissions
    that cannot be written get 503 store_unavailable saying so, nothing is
    granted or accepted without being stored, releases that cannot be recorded
    keep the lease, moc stays up, and all of it works again once space returns."""
    with tmpfs(tmp_path / "data", "8m") as disk:
        moc = start(moc_factory, [spec(tiny_models, "a", memory="30MiB")])
        with httpx.Client(base_url=moc.url, timeout=30) as http:
            kept = http.post("/v1/leases", json={"mb": 10, "ttl_s": 120}).json()
            filler = fill(disk)
            granted = []
            for _ in range(200):  # the database's log may still have room for a few
                reply = http.post("/v1/leases", json={"mb": 1, "ttl_s": 120})
                if reply.status_code != 201:
                    break
                granted.append(reply.json()["id"])
            assert reply.status_code == 503, reply.text
            err = reply.json()["error"]
            assert err["code"] == "store_unavailable"
            assert "disk is full" in err["message"]
            listed = {lease["id"] for lease in http.get("/v1/leases").json()["leases"]}
            assert listed == {kept["id"], *granted}
            assert held(http) == (10 + len(granted)) * MIB

            job = http.post("/v1/jobs", json={"model": "a", "prompt": "hi"})
            assert job.status_code == 503, job.text
            assert job.json()["error"]["code"] == "store_unavailable"
            assert http.get("/v1/jobs").json()["data"] == []

            # A release rewrites an existing row: it is stored if the WAL has
            # started over since (its file space is reused), refused if not.
            release = http.delete(f"/v1/leases/{kept['id']}")
            assert release.status_code in (200, 503), release.text
            live = {lease["id"] for lease in http.get("/v1/leases").json()["leases"]}
            assert (kept["id"] in live) == (release.status_code == 503)
            assert http.get("/health").status_code == 200

            filler.unlink()
            if release.status_code == 503:
                assert http.delete(f"/v1/leases/{kept['id']}").status_code == 200
            assert http.post("/v1/leases", json={"mb": 1}).status_code == 201
            job_id = http.post("/v1/jobs", json={"model": "a", "prompt": "hi"}).json()["job_id"]
            wait_for(
                lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "complete", timeout=30
            )
        assert moc.stop() == 0
        assert "Traceback" not in moc.log()


def test_a_data_dir_made_read_only_while_running(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """The data dir is made read-only (chmod) under a running moc: the state
    database stays writable through the file moc already holds open, so leases
    and jobs are still stored; a load that needs a new runtime log fails with
    load_failed naming the log file; moc stays up, and loads work again once
    the directory is writable."""
    if os.geteuid() == 0 and shutil.which("unshare") is None:
        pytest.skip("running as root, where chmod does not stop writes, and no unshare")
    moc = moc_factory(
        {
            "devices": {"nvml": "off", "host": [{"id": "host", "size": "100MiB"}]},
            "models": [spec(tiny_models, "a", memory="30MiB")],
        }
    )
    if os.geteuid() == 0:  # as root chmod stops nothing: run moc as an unprivileged user
        moc.command_prefix = ["unshare", "-U", "--map-user=65534", "--map-group=65534"]
    moc.start()
    data = moc.data_dir
    try:
        for folder in (data, *[p for p in data.rglob("*") if p.is_dir()]):
            folder.chmod(0o555)
        with httpx.Client(base_url=moc.url, timeout=30) as http:
            lease = http.post("/v1/leases", json={"mb": 10, "ttl_s": 120})
            assert lease.status_code == 201, lease.text
            job = http.post("/v1/jobs", json={"model": "a", "prompt": "hi"})
            assert job.status_code == 202, job.text
            refused = http.post("/v1/models/a/load")
            assert refused.status_code == 503, refused.text
            err = refused.json()["error"]
            assert err["code"] == "load_failed"
            assert f"cannot write the runtime log {data / 'logs' / 'a.log'}" in err["message"]
            assert "Permission denied" in err["message"]
            assert held(http) == 10 * MIB
            counted_once(http, leases=10 * MIB)
            assert http.get("/health").status_code == 200
            for folder in (data, *[p for p in data.rglob("*") if p.is_dir()]):
                folder.chmod(0o755)
            assert load(http, "a")["state"] == "ready"
            assert ask(moc.url, "a").status_code == 200
            job_id = job.json()["job_id"]  # accepted while read-only, run once it could load
            wait_for(
                lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "complete", timeout=30
            )
    finally:
        for folder in (data, *[p for p in data.rglob("*") if p.is_dir()]):
            folder.chmod(0o755)


# --- devices ------------------------------------------------------------------------------
FAKE_PYNVML = '''"""pynvml for moc serve in a test: the recording fake of tests/devices,
steered through files in $FAKE_NVML_STATE ("lost": the GPU is lost;
"used": the bytes in use)."""
import os
import sys

sys.path.insert(0, os.environ["FAKE_NVML_REPO"])
from tests.devices.fake_nvml import NVMLError, FakeGpu, FakeNvml  # noqa: E402

_state = os.environ["FAKE_NVML_STATE"]


class _Steered(FakeNvml):
    def _handle(self, handle):
        gpu = self.gpus[handle.index]
        gpu.lost = os.path.exists(os.path.join(_state, "lost"))
        with open(os.path.join(_state, "used")) as f:
            gpu.used = int(f.read())
        return super()._handle(handle)


_nvml = _Steered([FakeGpu("NVIDIA Fake", 8 << 30)])


def __getattr__(name):
    return getattr(_nvml, name)
'''


def test_nvml_errors_at_runtime(
    moc_factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NVML starts failing after moc started (GPU lost): moc stays up, logs it
    once, keeps serving leases against the last figures, shows the device's
    reading as stale with NVML's error in /v1/devices, and takes fresh
    figures again as soon as NVML answers."""
    shim, state = tmp_path / "shim", tmp_path / "nvml"
    shim.mkdir()
    state.mkdir()
    (shim / "pynvml.py").write_text(FAKE_PYNVML)
    (state / "used").write_text(str(1 << 30))
    # The shim goes first; the rest of PYTHONPATH stays, so moc is the tree under test.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FAKE_NVML_REPO", str(Path(__file__).parents[2]))
    monkeypatch.setenv("FAKE_NVML_STATE", str(state))
    moc = moc_factory({"devices": {"nvml": "on", "host": [], "poll_interval_s": 0.1}}).start()
    with httpx.Client(base_url=moc.url, timeout=10) as http:

        def gpu() -> dict[str, Any]:
            found: dict[str, Any] = http.get("/v1/devices/gpu0").json()
            return found

        fresh = gpu()
        assert (fresh["kind"], fresh["reading"], fresh["read_error"]) == ("nvidia", "ok", None)
        assert fresh["observed_bytes"] == 1 << 30

        (state / "lost").touch()
        (state / "used").write_text(str(3 << 30))  # not seen while the GPU is lost
        wait_for(lambda: gpu()["reading"] == "stale")
        stale = gpu()
        assert stale["read_error"] == "GPU is lost"
        assert stale["observed_bytes"] == 1 << 30
        lease = http.post("/v1/leases", json={"device": "gpu0", "mb": 1024, "ttl_s": 60})
        assert lease.status_code == 201, lease.text
        assert http.get("/health").status_code == 200
        assert metric(http, "moc_device_read_errors_total", device="gpu0") >= 1
        time.sleep(0.5)  # several failed polls: one warning
        assert moc.log().count("device could not be read") == 1

        (state / "lost").unlink()
        wait_for(lambda: gpu()["reading"] == "ok")
        again = gpu()
        # 3 GiB in use, 1 GiB of it the lease's (no pid: assumed in use): 2 GiB observed.
        assert (again["read_error"], again["observed_bytes"]) == (None, 2 << 30)
        assert again["held_bytes"] == 1 << 30
        assert '"event":"device readable again"' in moc.log()
    assert moc.stop() == 0
    assert "Traceback" not in moc.log()
