"""Runtime processes: start with an argv list in a session of their own, stop
the whole process group (SIGTERM, then SIGKILL after a grace period), and
watch processes an earlier moc started (found again after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Launch:
    """How to start one runtime: argv (no shell), extra environment, port."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    port: int


class RuntimeProcess:
    """A process moc started (``child``) or found again (``adopted``).

    Children are waited on through asyncio; adopted processes are not moc's
    children, so their exit is noticed by polling.
    """

    def __init__(self, pid: int, child: asyncio.subprocess.Process | None) -> None:
        self.pid = pid
        self._child = child

    @classmethod
    async def start(cls, launch: Launch, log_path: Path) -> RuntimeProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log.write(f"--- moc: starting at {stamp}: {' '.join(launch.argv)}\n".encode())
            log.flush()
            child = await asyncio.create_subprocess_exec(
                *launch.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **launch.env},
                start_new_session=True,  # its own process group, so stop reaches its children
            )
        return cls(child.pid, child)

    @classmethod
    def adopt(cls, pid: int) -> RuntimeProcess:
        return cls(pid, None)

    @property
    def returncode(self) -> int | None:
        if self._child is not None:
            return self._child.returncode
        return None if _alive(self.pid) else -1

    async def wait(self) -> int:
        """Until the process exits; its exit status (-1 when not known)."""
        if self._child is not None:
            return await self._child.wait()
        # Not our child: there is nothing to wait on but its existence.
        while _alive(self.pid):  # noqa: ASYNC110
            await asyncio.sleep(0.25)
        return -1

    async def stop(self, grace_s: float) -> None:
        """SIGTERM to the process group; SIGKILL to what is left after ``grace_s``."""
        if self.returncode is not None:
            _signal_group(self.pid, signal.SIGKILL)  # stray children of a dead leader
            return
        _signal_group(self.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait(), grace_s)
        _signal_group(self.pid, signal.SIGKILL)
        await self.wait()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def log_tail(path: Path, lines: int = 20, max_bytes: int = 16384) -> list[str]:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


def process_matches(pid: int, needle: str) -> bool:
    """Whether ``pid`` is alive and its command line contains ``needle``.

    Used before stopping a process recorded by an earlier moc: a pid can be
    reused, and moc must never signal a stranger.
    """
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
    return needle in cmdline
