"""Artifacts' files in the data dir, stored once per content, and the folders
runtimes read them through.

    <data_dir>/artifacts/blobs/sha256/<hex>    one file per distinct content
    <data_dir>/artifacts/views/<digest hex>/   an artifact's files under their
                                               own names: hard links to the blobs
    <data_dir>/artifacts/tmp/                  files being stored, views being built

A file is copied into ``tmp/`` while it is hashed, synced, then renamed to its
digest's name, so a blob is always complete; the same content stored twice
finds its blob there and drops the copy. A view is built in ``tmp/`` and
renamed into place whole. Views are hard links, so a runtime reads the very
bytes that verification hashed: a byte changed through a view changes the
blob, and the next verification sees it.

Every method does blocking I/O: the registry calls them from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from moc.errors import StoreUnavailable

CHUNK = 1 << 20


def _unwritable(path: Path, exc: OSError) -> StoreUnavailable:
    return StoreUnavailable(f"cannot write {path}: {exc.strerror or exc}")


class Blobs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._blobs = root / "blobs" / "sha256"
        self._views = root / "views"
        self.tmp = root / "tmp"

    def open(self) -> None:
        """Create the folders; drop what a crash left half-written in ``tmp/``."""
        try:
            for folder in (self._blobs, self._views, self.tmp):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable(self.root, exc) from exc
        for leftover in self.tmp.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def path(self, sha256: str) -> Path:
        return self._blobs / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_file(self, source: Path) -> tuple[str, int]:
        """Copy ``source`` in; its (SHA-256, size). OSError reading the source
        propagates (the caller names it); one writing the store is StoreUnavailable."""
        with source.open("rb") as src:
            return self._put(iter(lambda: src.read(CHUNK), b""))

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self._put([data])

    def _put(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        try:
            fd, name = tempfile.mkstemp(suffix=".part", dir=self.tmp)
        except OSError as exc:
            raise _unwritable(self.tmp, exc) from exc
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise _unwritable(tmp, exc) from exc
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise _unwritable(tmp, exc) from exc
            hex_ = digest.hexdigest()
            final = self.path(hex_)
            if final.exists():
                return hex_, size  # stored before: one copy is enough
            tmp.chmod(0o444)  # a blob never changes once stored
            try:
                os.replace(tmp, final)
            except OSError as exc:
                raise _unwritable(final, exc) from exc
            return hex_, size
        finally:
            tmp.unlink(missing_ok=True)

    def sweep(self, keep: set[str], views: set[str]) -> int:
        """Remove the blobs not in ``keep`` (left by a crash between storing a
        file and writing its row) and the views not in ``views``; how many blobs."""
        for view in self._views.iterdir():
            if view.name not in views:
                shutil.rmtree(view, ignore_errors=True)
        swept = 0
        for blob in self._blobs.iterdir():
            if blob.name not in keep:
                blob.unlink(missing_ok=True)
                swept += 1
        return swept

    def drop(self, blobs: Iterable[str]) -> None:
        for sha256 in blobs:
            self.path(sha256).unlink(missing_ok=True)

    # --- views ---------------------------------------------------------------------
    def view(self, digest_hex: str, files: dict[str, str]) -> Path:
        """The folder holding ``files`` (path → blob SHA-256) under their names,
        built once per artifact digest."""
        final = self._views / digest_hex
        if final.is_dir():
            return final
        try:
            building = Path(tempfile.mkdtemp(dir=self.tmp))
            for rel, sha256 in files.items():
                target = building / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(self.path(sha256), target)
            os.replace(building, final)
        except FileNotFoundError as exc:
            raise StoreUnavailable(f"cannot build {final}: a stored file is gone: {exc}") from exc
        except OSError as exc:
            if final.is_dir():  # built meanwhile by another load of the same artifact
                return final
            raise _unwritable(final, exc) from exc
        return final
