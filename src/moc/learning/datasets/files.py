"""Datasets' content files in the data dir, stored once per content.

    <data_dir>/datasets/sha256/<hex>.jsonl   one file per distinct content
    <data_dir>/datasets/tmp/<random>.part    uploads being received

An upload is written to ``tmp/``, synced, and renamed to its digest's name
only once it has been checked whole, so a content file is always complete and
never changes; a second upload of the same content finds it there and drops
its own copy. ``tmp/`` is on the same filesystem, so the rename is atomic.

What may be left behind by a ``kill -9`` (a ``.part`` file; a content file
whose row was never written, or whose row was deleted before the file) is
removed by :meth:`ContentFiles.sweep` at the next start.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO

from moc.errors import StoreUnavailable

SUFFIX = ".jsonl"
PART = ".part"


class Upload:
    """One upload's temporary file with its running SHA-256 and size.

    Written by one upload at a time (from a worker thread, one batch of
    chunks per call); nothing else touches it until :meth:`close`.
    """

    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(suffix=PART, dir=directory)
        except OSError as exc:
            raise _unwritable(directory, exc) from exc
        self.path = Path(name)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._file is not None, "written after close"
        try:
            self._file.write(data)
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc
        self._hash.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        """Flush and sync: a content file must survive a power loss once its row
        is committed."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.flush()
            os.fsync(file.fileno())
        except OSError as exc:
            raise _unwritable(self.path, exc) from exc
        finally:
            file.close()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


class ContentFiles:
    """The ``datasets`` folder of the data dir. Used by the dataset service on
    the event loop's thread (place, remove, sweep); uploads write only their
    own ``.part`` files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.content = root / "sha256"
        self.tmp = root / "tmp"

    def path(self, sha256: str) -> Path:
        return self.content / f"{sha256}{SUFFIX}"

    def upload(self) -> Upload:
        return Upload(self.tmp)

    def place(self, upload: Upload) -> Path:
        """The upload as its content's file: renamed there, or dropped if a file
        with the same content is there already. The upload is closed."""
        target = self.path(upload.sha256)
        try:
            self.content.mkdir(parents=True, exist_ok=True)
            if target.exists():
                upload.discard()
            else:
                upload.path.replace(target)
        except OSError as exc:
            raise _unwritable(target, exc) from exc
        return target

    def remove(self, sha256: str) -> None:
        try:
            self.path(sha256).unlink(missing_ok=True)
        except OSError as exc:
            raise _unwritable(self.path(sha256), exc) from exc

    def stored(self) -> set[str]:
        """The digests of the content files on disk."""
        if not self.content.is_dir():
            return set()
        return {p.name.removesuffix(SUFFIX) for p in self.content.glob(f"*{SUFFIX}")}

    def sweep(self, keep: set[str]) -> tuple[int, int]:
        """Remove every ``.part`` file and every content file not in ``keep``;
        only when no upload is running (at startup). Answers how many of each."""
        parts = list(self.tmp.glob(f"*{PART}")) if self.tmp.is_dir() else []
        orphans = self.stored() - keep
        try:
            for part in parts:
                part.unlink(missing_ok=True)
            for sha256 in orphans:
                self.path(sha256).unlink(missing_ok=True)
        except OSError as exc:
            raise _unwritable(self.root, exc) from exc
        return len(parts), len(orphans)


def _unwritable(path: Path, exc: OSError) -> StoreUnavailable:
    return StoreUnavailable(f"cannot write the dataset file {path}: {exc.strerror or exc}")
