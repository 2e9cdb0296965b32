"""Learning jobs at their limits, against a real ``moc serve``: a trainer that
does not yield in time is killed and resumes from its checkpoint; a cancel that
arrives while a job is yielding; a job that can never fit; a second run sized
by what the first was measured using, its memory shown in ``/v1/devices``."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from moc.learning.jobs.sizing import with_headroom
from tests.integration.support import Factory, chat, spec, start, wait_for
from tests.integration.test_learning import (
    LEARNING,
    LEARNS,
    add_dataset,
    finished,
    job,
    submit,
)
from tests.learning.worker.test_sft_learns import ROWS

pytestmark = [pytest.mark.usefixtures("no_stray_runtimes"), pytest.mark.slow]

# The real worker with SIGUSR1 ignored: a trainer caught in a step that does
# not end (or one that never learned moc's protocol) and so never yields.
STUBBORN = f"""#!/bin/sh
shift 2  # -m moc.learning.worker
exec {sys.executable} -c '
import runpy, signal, sys
set_handler = signal.signal
def deaf(signum, handler):
    return set_handler(signum, signal.SIG_IGN if signum == signal.SIGUSR1 else handler)
signal.signal = deaf
sys.argv = ["moc.learning.worker", *sys.argv[1:]]
runpy.run_module("moc.learning.worker", run_name="__main__", alter_sys=True)
' "$@"
"""


def stubborn_python(tmp_path: Path) -> str:
    path = tmp_path / "stubborn-python"
    path.write_text(STUBBORN)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def workers() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(os.getpid()).children(recursive=True)
        if "moc.learning.worker" in " ".join(p.cmdline())
    ]


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_trainer_that_does_not_yield_in_time_is_killed_and_resumes_from_its_checkpoint(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    learning = {**LEARNING, "yield_timeout_s": 1.5, "python": stubborn_python(tmp_path)}
    moc = start(
        moc_factory, [spec(tiny_models, "a", memory="600MiB")], size="1GiB", learning=learning
    )
    params = {**LEARNS, "max_steps": 400, "checkpoint_every": 10}
    with httpx.Client(base_url=moc.url, timeout=60) as http:
        add_dataset(http, "qa", ROWS)
        job_id = submit(http, kind="sft", dataset="qa", params=params)["id"]
        wait_for(lambda: job(http, job_id)["progress"]["step"] >= 15, timeout=90)
        (child,) = workers()

        t0 = time.monotonic()
        answer = http.post("/v1/chat/completions", json=chat("a"))
        waited = time.monotonic() - t0
        assert answer.status_code == 200, answer.text
        # killed at the timeout, not waited on for the rest of the run
        assert learning["yield_timeout_s"] <= waited < 15
        child.wait(10)
        assert "learning job did not yield in time: killed" in moc.log()  # never let go itself
        assert job(http, job_id)["yields"] == 1

        assert http.post("/v1/models/a/unload").status_code == 200
        done = finished(http, job_id, timeout=180)
        assert done["status"] == "complete", done["error"]
        assert (done["yields"], done["resumes"]) == (1, 1)
        assert done["output"]["steps"] == 400
    losses = (moc.data_dir / "learning" / "jobs" / job_id / "losses.jsonl").read_text()
    assert len(losses.splitlines()) == 400  # went on from its checkpoint, each step once


def test_a_cancel_while_a_job_is_yielding_ends_it_and_frees_its_memory(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    # A trainer that will not yield holds the job in "yielding" for 20 s: the
    # cancel arrives there, and must end it at once rather than at the timeout.
    learning = {**LEARNING, "yield_timeout_s": 20, "python": stubborn_python(tmp_path)}
    moc = start(
        moc_factory, [spec(tiny_models, "a", memory="600MiB")], size="1GiB", learning=learning
    )
    with httpx.Client(base_url=moc.url, timeout=60) as http:
        add_dataset(http, "qa", ROWS)
        job_id = submit(http, kind="sft", dataset="qa", params={**LEARNS, "max_steps": 100000})[
            "id"
        ]
        # past its first steps: its handlers are in place (a child asked before
        # then dies of the signal, which is a yield at step 0)
        wait_for(lambda: job(http, job_id)["progress"]["step"] >= 3, timeout=90)
        loading = threading.Thread(
            target=lambda: http.post("/v1/models/a/load", timeout=60), daemon=True
        )
        loading.start()
        wait_for(lambda: job(http, job_id)["status"] == "yielding", timeout=10)
        t0 = time.monotonic()
        assert http.delete(f"/v1/learning/jobs/{job_id}").status_code == 200
        ended = finished(http, job_id, timeout=15)
        assert time.monotonic() - t0 < 10
        assert ended["status"] == "cancelled"
        assert ended["held_on"] is None
        loading.join(30)
        assert http.get("/v1/models/a").json()["state"] == "ready"
        assert [lease["holder"] for lease in http.get("/v1/leases").json()["leases"]] == []
    assert workers() == []


def test_a_job_that_can_never_fit_is_refused_at_once(moc_factory: Factory) -> None:
    moc = start(moc_factory, [], size="100MiB", learning=LEARNING)
    with httpx.Client(base_url=moc.url, timeout=60) as http:
        add_dataset(http, "qa", ROWS)
        answer = http.post("/v1/learning/jobs", json={"kind": "sft", "dataset": "qa"})
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "exceeds_capacity"
        assert "host" in error["message"]
        assert http.get("/v1/learning/jobs").json()["jobs"] == []  # nothing stored


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_second_run_asks_for_what_the_first_was_measured_using(moc_factory: Factory) -> None:
    moc = start(moc_factory, [], size="1GiB", learning=LEARNING)
    params = {**LEARNS, "max_steps": 40}
    with httpx.Client(base_url=moc.url, timeout=60) as http:
        add_dataset(http, "qa", ROWS)
        first = submit(http, kind="sft", dataset="qa", params=params)
        assert first["bytes_source"] == "estimate"
        wait_for(lambda: job(http, first["id"])["status"] == "running", timeout=90)
        (device,) = http.get("/v1/devices").json()["devices"]
        assert device["held_bytes"] == first["bytes"]  # the job's memory, in the ledger
        assert device["leases"] == 1
        done = finished(http, first["id"])
        assert done["status"] == "complete", done["error"]
        assert done["peak_used_bytes"] > 0

        second = submit(http, kind="sft", dataset="qa", params=params)
        assert second["bytes_source"] == "measured"
        assert second["bytes"] == with_headroom(done["peak_used_bytes"])
        # other settings are another size: estimated again
        other = submit(http, kind="sft", dataset="qa", params={**params, "seq_len": 32})
        assert other["bytes_source"] == "estimate"
        for j in (second, other):
            assert http.delete(f"/v1/learning/jobs/{j['id']}").status_code == 200
