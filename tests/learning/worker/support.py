"""Starting a worker module in a child process, as the daemon would, and reading its events."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moc.learning.worker.protocol import JobFile, parse

DRIVER = Path(__file__).with_name("drive.py")
SRC = Path(__file__).parents[3] / "src"


@dataclass
class Finished:
    code: int
    events: list[dict[str, Any]]
    log: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]

    @property
    def last(self) -> dict[str, Any]:
        return self.events[-1]


def run_worker(
    module: str,
    job: JobFile,
    job_dir: Path,
    *,
    signal_at_progress: tuple[str, int] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 110,
) -> Finished:
    job_dir.mkdir(parents=True, exist_ok=True)
    job.write(job_dir)
    argv = [sys.executable, str(DRIVER), module, str(job_dir)]
    if signal_at_progress:
        argv += ["--signal-at-progress", signal_at_progress[0], str(signal_at_progress[1])]
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    proc = subprocess.run(
        argv, capture_output=True, env=full_env, timeout=timeout, stdin=subprocess.DEVNULL
    )
    events = [e for line in proc.stdout.splitlines() if (e := parse(line)) is not None]
    stray = [line for line in proc.stdout.splitlines() if parse(line) is None and line.strip()]
    assert not stray, f"non-protocol lines on stdout: {stray[:3]}"
    return Finished(proc.returncode, events, proc.stderr.decode(errors="replace"))


def job_for(kind: str, tmp: Path, params: dict[str, Any], **fields: Any) -> JobFile:
    return JobFile(
        id=f"{kind}-1",
        kind=kind,
        params=params,
        output_dir=str(tmp / "output"),
        checkpoint_dir=str(tmp / "checkpoints"),
        **fields,
    )
