"""Fixtures for the learning worker: the tiny base, datasets, and the worker
as the daemon runs it (``python -m moc.learning.worker <job_dir>``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from moc.learning.tiny_hf import write_tiny_base
from moc.learning.worker.protocol import JobFile, parse

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_base(tmp_path_factory.mktemp("hf") / "tiny-base")


def chat_rows(count: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {a} plus {a + 1}?"},
                {"role": "assistant", "content": f"It is {2 * a + 1}."},
            ]
        }
        for a in range(count)
    ]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_job(
    job_dir: Path,
    base: Path,
    dataset: Path,
    params: dict[str, Any],
    dataset_format: str = "chat",
) -> JobFile:
    job_dir.mkdir(parents=True, exist_ok=True)
    job = JobFile(
        id=job_dir.name,
        kind="sft",
        params=params,
        output_dir=str(job_dir / "adapter"),
        checkpoint_dir=str(job_dir / "checkpoints"),
        base=str(base),
        dataset=str(dataset),
        dataset_format=dataset_format,
    )
    job.write(job_dir)
    return job


def worker_command(job_dir: Path, prelude: str = "") -> list[str]:
    """The daemon's command line; ``prelude`` runs first in the child (a
    resource limit), then the worker as ``-m`` would run it."""
    if not prelude:
        return [sys.executable, "-m", "moc.learning.worker", str(job_dir)]
    code = (
        f"{prelude}\nimport runpy, sys\nsys.argv = ['worker', {str(job_dir)!r}]\n"
        "runpy.run_module('moc.learning.worker', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", code]


def start(job_dir: Path, prelude: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with (job_dir / "worker.log").open("a") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            worker_command(job_dir, prelude), stdout=subprocess.PIPE, stderr=log, text=True, env=env
        )


@dataclass
class Finished:
    returncode: int
    events: list[dict[str, Any]]

    def last(self, event: str) -> dict[str, Any]:
        return [e for e in self.events if e["event"] == event][-1]


def finish(proc: subprocess.Popen[str], timeout: float = 100) -> Finished:
    out, _ = proc.communicate(timeout=timeout)
    events = [e for e in map(parse, out.splitlines()) if e is not None]
    return Finished(proc.returncode, events)


def run_worker(job_dir: Path, prelude: str = "") -> Finished:
    return finish(start(job_dir, prelude))
