"""Artifacts in SQLite: one row per (name, version), keyed by the manifest's
digest, holding the manifest itself and its signature (if any).

The files are not here: they are blobs named by their SHA-256
(:mod:`moc.artifacts.blobs`). The registry reads every row once, at its
start, and keeps them; this table is written with each change.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from moc.artifacts.manifest import Manifest, parse
from moc.errors import StoreUnavailable
from moc.store.sqlite import Database

_COLUMNS = "digest, name, version, kind, manifest, signature, signed_by, created_at"


@dataclass(frozen=True)
class Artifact:
    """One registered artifact. ``digest`` is ``sha256:`` and the manifest's SHA-256."""

    digest: str
    manifest: Manifest
    signature: bytes | None  # the model-signing bundle over its files, or None
    signed_by: str | None  # the key id that signed it, as verified when registered

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}"


class ArtifactStore:
    """The ``artifacts`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _artifact(row: tuple[Any, ...]) -> Artifact:
        digest, _, _, _, manifest, signature, signed_by, _ = row
        return Artifact(
            digest=f"sha256:{digest}",
            manifest=parse(bytes(manifest)),
            signature=None if signature is None else bytes(signature),
            signed_by=signed_by,
        )

    def insert(self, artifact: Artifact) -> None:
        m = artifact.manifest
        with self._db.transaction() as conn:
            conn.execute(
                f"INSERT INTO artifacts ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                (artifact.hex, m.name, m.version, m.kind.value, m.canonical(),
                 artifact.signature, artifact.signed_by, m.created_at),
            )  # fmt: skip

    def delete(self, digest: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM artifacts WHERE digest = ?", (digest.removeprefix("sha256:"),)
            )

    def all(self) -> list[Artifact]:
        try:
            rows = self._db.conn.execute(f"SELECT {_COLUMNS} FROM artifacts").fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self._db.path}: {exc}") from exc
        return [self._artifact(row) for row in rows]
