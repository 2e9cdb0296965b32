"""Exact resume: a run that yields (SIGUSR1) or is killed (SIGKILL) and is
started again with the same job.json ends with the loss sequence and the
adapter weights, to the bit, of a run that was never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from moc.learning.worker.protocol import EXIT_DONE, EXIT_YIELDED, parse
from tests.learning.worker.conftest import (
    Finished,
    chat_rows,
    finish,
    start,
    write_job,
    write_jsonl,
)

pytestmark = pytest.mark.slow

PARAMS = {"max_steps": 30, "checkpoint_every": 8, "batch_size": 4, "seq_len": 64, "threads": 1}


class Baseline:
    """The uninterrupted run, started once for the module and awaited lazily,
    so it trains while the interrupted runs do."""

    def __init__(self, job_dir: Path, proc: subprocess.Popen[str]) -> None:
        self.job_dir = job_dir
        self.proc = proc
        self._finished: Finished | None = None

    def result(self) -> Finished:
        if self._finished is None:
            self._finished = finish(self.proc)
        return self._finished


def make_job(job_dir: Path, base: Path) -> Path:
    job_dir.mkdir(parents=True)
    dataset = write_jsonl(job_dir / "chat.jsonl", chat_rows())
    write_job(job_dir, base, dataset, PARAMS)
    return job_dir


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Baseline:
    job_dir = make_job(tmp_path_factory.mktemp("baseline") / "job", tiny_base)
    return Baseline(job_dir, start(job_dir))


def losses_file(job_dir: Path) -> list[float]:
    return [
        json.loads(line)["loss"] for line in (job_dir / "losses.jsonl").read_text().splitlines()
    ]


def assert_same_as_baseline(job_dir: Path, result: Finished, baseline: Baseline) -> None:
    expected = baseline.result()
    assert expected.returncode == EXIT_DONE
    assert result.returncode == EXIT_DONE
    want = expected.last("done")["output"]
    got = result.last("done")["output"]
    assert len(want["losses"]) == PARAMS["max_steps"]
    assert got["losses"] == want["losses"]  # floats compared exactly
    assert losses_file(job_dir) == want["losses"]
    assert got["steps"] == want["steps"] == PARAMS["max_steps"]
    ours = load_file(str(job_dir / "adapter" / "adapter_model.safetensors"))
    theirs = load_file(str(baseline.job_dir / "adapter" / "adapter_model.safetensors"))
    assert ours.keys() == theirs.keys()
    assert ours
    for name, tensor in theirs.items():
        assert torch.equal(ours[name], tensor), name
    # the adapter moved away from its initialisation (B starts at zero)
    assert any(t.abs().sum() > 0 for n, t in ours.items() if "lora_B" in n)


def read_until(proc: subprocess.Popen[str], predicate: object) -> list[dict[str, object]]:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        event = parse(line)
        if event is None:
            continue
        seen.append(event)
        if predicate(event):  # type: ignore[operator]
            return seen
    raise AssertionError(f"the worker ended before the awaited event: {seen[-3:]}")


def test_a_yielded_run_resumes_to_the_same_losses_and_weights(
    tmp_path: Path, tiny_base: Path, baseline: Baseline
) -> None:
    job_dir = make_job(tmp_path / "job", tiny_base)
    proc = start(job_dir)
    read_until(proc, lambda e: e["event"] == "progress" and e["step"] == 11)
    proc.send_signal(signal.SIGUSR1)
    rest = finish(proc)
    assert rest.returncode == EXIT_YIELDED
    yielded = rest.last("yielded")["step"]
    # honoured at the next step boundary: at most the step that was running
    assert 11 <= yielded <= 12
    assert [e["event"] for e in rest.events][-2:] == ["checkpoint", "yielded"]
    assert (job_dir / "checkpoints" / f"step-{yielded}").is_dir()
    assert not (job_dir / "adapter").exists()

    resumed = finish(start(job_dir))
    started = resumed.events[0]
    assert started["event"] == "started"
    assert started["resumed"] is True
    assert started["step"] == yielded
    assert resumed.events[1] == {**resumed.events[1], "event": "progress", "step": yielded + 1}
    assert_same_as_baseline(job_dir, resumed, baseline)


def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_same_losses_and_weights(
    tmp_path: Path, tiny_base: Path, baseline: Baseline
) -> None:
    job_dir = make_job(tmp_path / "job", tiny_base)
    proc = start(job_dir)
    # past the checkpoint at 16, so that steps 17..19 are lost with the process
    read_until(proc, lambda e: e["event"] == "progress" and e["step"] == 19)
    proc.kill()
    proc.communicate()
    assert len(losses_file(job_dir)) >= 19
    checkpoints = sorted(p.name for p in (job_dir / "checkpoints").iterdir())
    assert checkpoints == ["step-16", "step-8"]  # the last two

    resumed = finish(start(job_dir))
    assert resumed.events[0]["step"] == 16
    assert resumed.events[0]["resumed"] is True
    assert_same_as_baseline(job_dir, resumed, baseline)
