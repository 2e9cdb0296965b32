"""Runtime processes: start with an argv list in a session of their own, stop
the whole process group (SIGTERM, then SIGKILL after a grace period), and
watch processes an earlier moc started (found again after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, BinaryIO

import psutil

from moc.backends.launch import Launch
from moc.backends.systemd import stop_unit, unit_main_pid


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RuntimeProcess:
    """A process moc started (``child``) or found again (``adopted``).

    Children are started with :class:`subprocess.Popen`, which uses vfork:
    about 0.5 ms, where a fork of the daemon (uvloop's way) copies its page
    tables and costs ~20 ms per start. Exits are noticed through a pidfd on
    the event loop, for children and adopted processes alike.
    """

    def __init__(
        self, pid: int, child: subprocess.Popen[bytes] | None, unit: str | None = None
    ) -> None:
        self.pid = pid
        self._child = child
        self.unit = unit  # the systemd user service it runs as, if any

    @classmethod
    def start(cls, launch: Launch, log_path: Path) -> RuntimeProcess:
        """Start it; raises OSError whose ``strerror`` says what failed (the
        runtime's log, or the runtime itself) when it cannot be started."""
        log = _open_log(log_path, launch.argv)
        what = launch.argv[0]
        with log:
            io: dict[str, Any] = {
                "stdin": subprocess.DEVNULL,
                "stdout": log,
                "stderr": subprocess.STDOUT,
                "env": {**os.environ, **launch.env},
            }
            try:
                if launch.unit is None:
                    # its own process group, so stop reaches its children
                    child = subprocess.Popen(launch.argv, start_new_session=True, **io)
                    return cls(child.pid, child)
                # systemd-run starts the service and returns
                done = subprocess.run(launch.argv, timeout=30, check=False, **io)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot start {what}: {exc.strerror}") from exc
        if done.returncode != 0:
            status = done.returncode
            raise OSError(errno.EIO, f"cannot start {what}: it exited with status {status}")
        return cls(unit_main_pid(launch.unit), None, launch.unit)

    @classmethod
    def adopt(cls, pid: int) -> RuntimeProcess:
        return cls(pid, None)

    @property
    def returncode(self) -> int | None:
        if self._child is not None:
            return self._child.poll()
        return None if _alive(self.pid) else -1

    async def wait(self) -> int:
        """Until the process exits; its exit status (-1 when not known)."""
        if self.returncode is None:
            await _exited(self.pid)
        if self._child is not None:
            return self._child.wait()
        return -1

    async def stop(self, grace_s: float) -> None:
        """SIGTERM to the process group; SIGKILL to what is left after ``grace_s``.
        A systemd service is stopped through systemd first."""
        if self.unit is not None and self.returncode is None:
            await stop_unit(self.unit, grace_s)
        if self.returncode is not None:
            _signal_group(self.pid, signal.SIGKILL)  # stray children of a dead leader
            return
        _signal_group(self.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wait(), grace_s)
        _signal_group(self.pid, signal.SIGKILL)
        await self.wait()


def _open_log(path: Path, argv: tuple[str, ...]) -> BinaryIO:
    """The runtime's log, opened for appending with a line that marks this start."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    log: BinaryIO | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = path.open("ab")
        log.write(f"--- moc: starting at {stamp}: {' '.join(argv)}\n".encode())
        log.flush()
    except OSError as exc:
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()
        raise OSError(exc.errno, f"cannot write the runtime log {path}: {exc.strerror}") from exc
    return log


async def _exited(pid: int) -> None:
    """Until ``pid`` exits (it need not be our child)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (not Linux ≥ 5.3): look now and then
        while _alive(pid):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        return
    loop = asyncio.get_running_loop()
    gone = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await gone
    finally:
        loop.remove_reader(fd)
        os.close(fd)


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
