"""Measured model sizes in SQLite (the ``learned_sizes`` table).

A size is keyed by the model, the file's fingerprint (size and modification
time, so a replaced file is measured afresh), ctx, parallel and the kind of
device (a GPU process and a CPU process of the same model differ). The
catalog reads them to size a load; the lifecycle writes them once a loaded
model's usage has been measured.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from moc.errors import StoreUnavailable
from moc.store.sqlite import Database


@dataclass(frozen=True)
class SizeKey:
    model: str
    fingerprint: str
    ctx: int
    parallel: int
    device_kind: str


class SizeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def measured(self, key: SizeKey) -> int | None:
        try:
            row = self._db.conn.execute(
                "SELECT bytes FROM learned_sizes WHERE model = ? AND fingerprint = ? AND ctx = ? "
                "AND parallel = ? AND device_kind = ?",
                (key.model, key.fingerprint, key.ctx, key.parallel, key.device_kind),
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self._db.path}: {exc}") from exc
        return None if row is None else int(row[0])

    def save_measured(self, key: SizeKey, nbytes: int, now: float) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO learned_sizes VALUES (?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                "bytes = excluded.bytes, measured_at = excluded.measured_at",
                (
                    key.model,
                    key.fingerprint,
                    key.ctx,
                    key.parallel,
                    key.device_kind,
                    nbytes,
                    now,
                ),
            )
