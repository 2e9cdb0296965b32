"""A learning job's child process: started in its own process group in the
learning Python, its protocol lines read from stdout, its stderr kept in the
job's ``worker.log``, and killed with moc (``PR_SET_PDEATHSIG``) so that a
``kill -9`` of the daemon never leaves a trainer holding memory nobody
accounts for. The protocol is :mod:`moc.learning.worker.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from moc.learning.worker.protocol import parse

LOG_NAME = "worker.log"
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class WorkerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self._proc = proc
        self.log_path = log_path
        self.pid = proc.pid

    @classmethod
    async def start(
        cls, python: str, job_dir: Path, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        """Raises OSError naming what could not be started."""
        log_path = job_dir / LOG_NAME
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        argv = [python, "-m", "moc.learning.worker", str(job_dir)]
        with log_path.open("ab") as log:
            log.write(f"--- moc: starting at {stamp}: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    env={**os.environ, **(env or {})},
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                    limit=1 << 20,
                )
            except OSError as exc:
                raise OSError(exc.errno, f"cannot start {python}: {exc.strerror}") from exc
        return cls(proc, log_path)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Its protocol lines until it closes stdout; other lines are skipped."""
        assert self._proc.stdout is not None
        while True:
            try:
                line = await self._proc.stdout.readline()
            except ValueError:  # a line over the limit: not a protocol line
                continue
            if not line:
                return
            if (item := parse(line)) is not None:
                yield item

    def ask_to_yield(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGUSR1)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def wait(self) -> int:
        return await self._proc.wait()

    async def stop(self, grace_s: float) -> int:
        """SIGTERM, then SIGKILL after ``grace_s``; its exit status."""
        if self._proc.returncode is None:
            self.terminate()
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(self._proc.wait(), grace_s)
        self.kill()
        return await self._proc.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of its log, for a failed job's reason."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
