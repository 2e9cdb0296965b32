"""Runs one worker module's ``run`` as a job's child would, for the tests.

    python drive.py <module> <job_dir> [--signal-at-progress SIGNAME N]

The package's own ``__main__`` picks the module by the job's kind; this
driver names it, so a test of one kind needs nothing else. With
``--signal-at-progress`` it sends the named signal to its own process right
after the N-th ``progress`` line is written: a signal that arrives at a known
point of the work, without a race against how fast the work is.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, TextIO


class _SignalAtProgress:
    def __init__(self, out: TextIO, signum: int, at: int) -> None:
        self._out = out
        self._signum = signum
        self._at = at
        self._seen = 0

    def write(self, text: str) -> int:
        written = self._out.write(text)
        for line in text.splitlines():
            try:
                event: Any = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "progress":
                self._seen += 1
                if self._seen == self._at:
                    self._out.flush()
                    os.kill(os.getpid(), self._signum)
        return written

    def flush(self) -> None:
        self._out.flush()


def main() -> None:
    module, job_dir = sys.argv[1], Path(sys.argv[2])
    if len(sys.argv) > 3 and sys.argv[3] == "--signal-at-progress":
        signum = getattr(signal, sys.argv[4])
        sys.stdout = _SignalAtProgress(sys.stdout, signum, int(sys.argv[5]))  # type: ignore[assignment]
    from moc.learning.worker.protocol import JobFile

    run = importlib.import_module(f"moc.learning.worker.{module}").run
    sys.exit(run(JobFile.read(job_dir), job_dir))


if __name__ == "__main__":
    main()
