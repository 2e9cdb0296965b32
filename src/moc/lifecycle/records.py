"""What the lifecycle keeps in SQLite: the runtime processes moc started
(the ``runtimes`` table), beside the measured sizes it writes.

Runtime rows let a restarted moc find the processes an earlier moc left
behind (after ``kill -9``) and adopt or stop them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from moc.errors import StoreUnavailable
from moc.models.store import SizeStore


@dataclass(frozen=True)
class RuntimeRecord:
    model: str
    pid: int
    port: int
    device: str
    spec_hash: str
    started_at: float


class ModelStore(SizeStore):
    """The lifecycle's repository: runtime records, and the measured sizes.

    It extends the models' :class:`SizeStore` rather than standing beside it
    because the manager writes the sizes it measures through the one store it
    is given, and the daemon hands that same object to the catalog to read.
    """

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
