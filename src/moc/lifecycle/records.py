"""What the lifecycle keeps in SQLite: the runtime processes moc started
(the ``runtimes`` table).

Runtime rows let a restarted moc find the processes an earlier moc left
behind (after ``kill -9``) and adopt or stop them.
"""

from __future__ import annotations

import sqlite3

from moc.backends.record import RuntimeRecord
from moc.errors import StoreUnavailable
from moc.store.sqlite import Database


class RuntimeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

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
