"""``python -m moc.learning.worker <job_dir>``: run the job that
``<job_dir>/job.json`` describes and exit with the protocol's status.

Each kind is a module with ``run(job: JobFile, job_dir: Path) -> int``,
imported only when a job of that kind runs: the kinds need different heavy
libraries, and a missing one fails that kind alone, with a reason.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from moc.learning.worker import yielding
from moc.learning.worker.protocol import EXIT_FAILED, JOB_FILE, JobFile, emit

# kind → the module that runs it. quantize and index are written beside sft
# (moc.learning.worker.quantize, moc.learning.worker.index) with the same run().
KINDS = {
    "sft": "moc.learning.worker.sft",
    "quantize": "moc.learning.worker.quantize",
    "index": "moc.learning.worker.index",
}

Runner = Callable[[JobFile, Path], int]


def runner(kind: str) -> Runner:
    """The ``run`` of ``kind``'s module; ImportError names what is missing."""
    module = importlib.import_module(KINDS[kind])
    run: Runner = module.run
    return run


def main(argv: list[str]) -> int:
    yielding.install()
    if len(argv) != 2:
        emit("failed", reason="usage: python -m moc.learning.worker <job_dir>")
        return EXIT_FAILED
    job_dir = Path(argv[1])
    try:
        job = JobFile.read(job_dir)
    except (OSError, ValueError, TypeError) as exc:
        emit("failed", reason=f"cannot read {job_dir / JOB_FILE}: {exc}")
        return EXIT_FAILED
    if job.kind not in KINDS:
        emit("failed", reason=f"kind {job.kind!r} is not one of {', '.join(KINDS)}")
        return EXIT_FAILED
    try:
        run = runner(job.kind)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == KINDS[job.kind]:
            emit("failed", reason=f"{job.kind} jobs are not part of this moc ({KINDS[job.kind]})")
            return EXIT_FAILED
        emit(
            "failed",
            reason=f"{job.kind} jobs need a library this Python lacks ({exc}); "
            "install moc[learning] into learning.python",
        )
        return EXIT_FAILED
    return run(job, job_dir)


def leave(code: int) -> None:
    """Exit at once once the work is on disk: tearing the interpreter down
    (torch's and CUDA's finalizers) takes about a second, and a yielding job's
    memory is only free when its process is gone."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main(sys.argv))
