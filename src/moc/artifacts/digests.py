"""The SHA-256 of a folder's files, remembered per file identity.

Hashing 40 GB of weights takes minutes; a model unloaded and loaded again
should not pay that twice. A file's digest is remembered under its identity:
device, inode, size, mtime and ctime (in nanoseconds). Writing a file changes
its mtime and ctime; ``touch -d`` can set the mtime back, but nothing short of
changing the system clock sets the ctime back, so a file changed in place is
hashed again. To verify from scratch regardless (a file restored from a
backup with its inode and times, a clock moved back), turn
``artifacts.remember_verified`` off, or restart moc: the memory is not kept
across restarts.

Called from worker threads (the registry hashes off the event loop): the
cache is a dict guarded by a lock, and the lock is never held while hashing.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

from moc.errors import ArtifactTampered

CHUNK = 1 << 20

FileId = tuple[int, int, int, int, int]


def file_id(st: os.stat_result) -> FileId:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class DigestMemory:
    def __init__(self, enabled: bool = True) -> None:
        self._enabled = enabled
        self._known: dict[FileId, str] = {}
        self._lock = threading.Lock()
        self.hashed_bytes = 0  # how much was read to hash, for the benchmark and tests

    def sha256(self, path: Path) -> str:
        """The file's SHA-256; OSError if it cannot be read."""
        with path.open("rb") as f:
            before = file_id(os.fstat(f.fileno()))
            with self._lock:
                known = self._known.get(before) if self._enabled else None
            if known is not None:
                return known
            digest = hashlib.sha256()
            while chunk := f.read(CHUNK):
                digest.update(chunk)
            after = file_id(os.fstat(f.fileno()))
        hex_ = digest.hexdigest()
        with self._lock:
            self.hashed_bytes += before[2]
            if self._enabled and before == after:  # not written to while being read
                self._known[before] = hex_
        return hex_


def folder_files(folder: Path) -> dict[str, Path]:
    """The regular files under ``folder`` by relative POSIX path. A symlink or
    anything but a file or folder is ArtifactTampered naming it: a runtime
    would read through it what no digest covers."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            path = here / name
            st = path.lstat()
            rel = path.relative_to(folder).as_posix()
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactTampered(f"{rel}: not a regular file (a link or a device)", file=rel)
            found[rel] = path
    return found


def check_folder(folder: Path, expected: dict[str, str], memory: DigestMemory) -> None:
    """Raise ArtifactTampered naming the first file that is missing, added or
    changed under ``folder`` against ``expected`` (path → SHA-256)."""
    try:
        present = folder_files(folder)
    except FileNotFoundError:
        present = {}
    for rel in sorted(expected):
        if rel not in present:
            raise ArtifactTampered(f"{rel}: missing", file=rel)
    for rel in sorted(present):
        if rel not in expected:
            raise ArtifactTampered(f"{rel}: a file the manifest does not list", file=rel)
    for rel in sorted(expected):
        try:
            actual = memory.sha256(present[rel])
        except OSError as exc:
            raise ArtifactTampered(f"{rel}: cannot be read ({exc.strerror})", file=rel) from exc
        if actual != expected[rel]:
            raise ArtifactTampered(
                f"{rel}: changed (sha256 {actual[:16]}…, the manifest says {expected[rel][:16]}…)",
                file=rel,
            )
