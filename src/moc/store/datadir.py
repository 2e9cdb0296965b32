"""The data directory: created on first use, held by one daemon at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from moc.errors import ConfigError


class DataDir:
    """An exclusive hold on a data directory for the life of the daemon.

    Two daemons on one directory would hand out the same memory twice and
    interleave fencing tokens; the second one fails at startup instead.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self._lock: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = open(self.path / "moc.lock", "a+")  # noqa: SIM115 - held for the daemon's life
        except OSError as exc:
            raise ConfigError(
                f"data_dir: cannot use {self.path}: {exc.strerror} (set --data-dir or MOC_DATA_DIR)"
            ) from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.seek(0)
            owner = lock.read().strip() or "another process"
            lock.close()
            raise ConfigError(
                f"data_dir: {self.path} is in use by moc pid {owner}; stop it or pick another "
                "--data-dir"
            ) from exc
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def file(self, name: str) -> Path:
        return self.path / name
