"""Model facts in SQLite: measured sizes, and the runtime processes moc started.

Measured sizes are keyed by the model, the file's fingerprint (size and
modification time, so a replaced file is measured afresh), ctx, parallel and
the kind of device (a GPU process and a CPU process of the same model differ).
Runtime rows let a restarted moc find the processes an earlier moc left
behind (after ``kill -9``) and adopt or stop them.
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


@dataclass(frozen=True)
class RuntimeRecord:
    model: str
    pid: int
    port: int
    device: str
    spec_hash: str
    started_at: float


class ModelStore:
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

    def runtimes(self) -> list[RuntimeRecord]:
        try:
            rows = self._db.conn.execute(
                "SELECT model, pid, port, device, spec_hash, started_at FROM runtimes"
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self._db.path}: {exc}") from exc
        return [
            RuntimeRecord(str(m), int(p), int(o), str(d), str(h), float(t))
            for m, p, o, d, h, t in rows
        ]

    def save_runtime(self, record: RuntimeRecord) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO runtimes VALUES (?,?,?,?,?,?)",
                (
                    record.model,
                    record.pid,
                    record.port,
                    record.device,
                    record.spec_hash,
                    record.started_at,
                ),
            )

    def forget_runtime(self, model: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM runtimes WHERE model = ?", (model,))
