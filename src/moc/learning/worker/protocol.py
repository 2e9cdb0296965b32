"""What a learning job's child process and the daemon say to each other.

The daemon starts ``<learning.python> -m moc.learning.worker <job_dir>``. The
child reads ``<job_dir>/job.json`` (:class:`JobFile`), does the work, and
speaks one JSON object per line on stdout (:func:`emit`); whatever else it
prints goes to stderr, which the daemon keeps in ``<job_dir>/worker.log``.

- ``{"event": "started", "step": s, "total": t, "resumed": bool}``
- ``{"event": "progress", "step": s, "total": t, "loss": x | null, "tokens_per_s": x | null}``
- ``{"event": "checkpoint", "step": s}``: a checkpoint at step ``s`` is on disk, whole
- ``{"event": "yielded", "step": s}``: checkpointed at ``s`` after a yield request; exit 75
- ``{"event": "done", "output": {...}}``: the output is whole in ``output_dir``; exit 0
- ``{"event": "failed", "reason": "..."}``: a failure the child understood; exit 1

Signals from the daemon: SIGUSR1 asks the child to yield — checkpoint at the
next step boundary and exit with :data:`EXIT_YIELDED`; SIGTERM (cancel) ends
it at once, and SIGKILL follows if it lingers. A child killed in any way
resumes from its last whole checkpoint: ``checkpoint_dir`` holds
``step-<n>`` folders, each written under a temporary name and renamed into
place only when complete, so a half-written checkpoint is never read.

This module is imported by the daemon and the child alike: standard library only.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_YIELDED = 75  # EX_TEMPFAIL: checkpointed, start again later
JOB_FILE = "job.json"


@dataclass(frozen=True)
class JobFile:
    """Everything the child needs, written by the daemon before each start."""

    id: str
    kind: str  # "sft" | "quantize" | "index"
    params: dict[str, Any]
    output_dir: str  # where the finished output goes (written whole, then renamed)
    checkpoint_dir: str
    base: str | None = None  # sft: a Hugging Face model folder
    model: str | None = None  # quantize: the source GGUF file
    dataset: str | None = None  # the dataset's JSONL file
    dataset_format: str | None = None  # "chat" | "instruction" | "documents"
    moc_url: str | None = None  # index with a model moc serves: moc's own HTTP address
    moc_tls: dict[str, Any] | None = None  # moc serves TLS: selfcall.SelfTls, as a dict
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, job_dir: Path) -> Path:
        path = job_dir / JOB_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, job_dir: Path) -> JobFile:
        return cls(**json.loads((job_dir / JOB_FILE).read_text()))


def emit(event: str, **fields: Any) -> None:
    """One protocol line on stdout, flushed at once."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def parse(line: str | bytes) -> dict[str, Any] | None:
    """A protocol line as a dict, or None for a line that is not one."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("event"), str):
        return value
    return None
