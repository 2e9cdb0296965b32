"""Learning jobs in SQLite: one row per job, written at every change of status
before the change is acted on, so a ``kill -9`` of moc loses none; and the
peak memory each (base, kind, settings) was measured using, for the next run.

The row holds the whole job as JSON (``record``) beside the columns queries
filter on.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

import orjson

from moc.errors import StoreUnavailable
from moc.learning.jobs.model import UNFINISHED, Kind, LearningJob, Progress, Status
from moc.store.sqlite import Database


def _record(job: LearningJob) -> bytes:
    return orjson.dumps(dataclasses.asdict(job))


def _job(record: bytes | str) -> LearningJob:
    values: dict[str, Any] = orjson.loads(record)
    values["kind"] = Kind(values["kind"])
    values["status"] = Status(values["status"])
    values["progress"] = Progress(**values["progress"])
    return LearningJob(**values)


class LearningJobStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[LearningJob]:
        try:
            return [_job(r[0]) for r in self._db.conn.execute(sql, args)]
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"cannot read learning jobs from {self._db.path}: {exc}"
            ) from exc

    def next_seq(self) -> int:
        row = self._db.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM learning_jobs").fetchone()
        return int(row[0]) + 1

    def put(self, job: LearningJob) -> None:
        """Insert or replace the job's row, committed before it returns."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO learning_jobs (id, seq, kind, status, dataset, goal, created_at, "
                "record) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "status = excluded.status, record = excluded.record",
                (
                    job.id,
                    job.seq,
                    job.kind.value,
                    job.status.value,
                    job.dataset,
                    job.goal,
                    job.created_at,
                    _record(job),
                ),
            )

    def get(self, job_id: str) -> LearningJob | None:
        found = self._read("SELECT record FROM learning_jobs WHERE id = ?", (job_id,))
        return found[0] if found else None

    def find(
        self, status: Status | None = None, kind: Kind | None = None, limit: int = 100
    ) -> list[LearningJob]:
        """Newest first."""
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind.value)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return self._read(
            f"SELECT record FROM learning_jobs {clause}ORDER BY seq DESC LIMIT ?",
            (*args, limit),
        )

    def unfinished(self) -> list[LearningJob]:
        """Every job not yet complete, failed or cancelled, oldest first."""
        marks = ",".join("?" * len(UNFINISHED))
        return self._read(
            f"SELECT record FROM learning_jobs WHERE status IN ({marks}) ORDER BY seq",
            tuple(s.value for s in UNFINISHED),
        )

    def counts(self) -> dict[Status, int]:
        found = dict.fromkeys(Status, 0)
        for status, count in self._db.conn.execute(
            "SELECT status, COUNT(*) FROM learning_jobs GROUP BY status"
        ):
            found[Status(status)] = int(count)
        return found

    def using_dataset(self, dataset_id: str) -> list[str]:
        """Ids of unfinished jobs that read this dataset."""
        marks = ",".join("?" * len(UNFINISHED))
        rows = self._db.conn.execute(
            f"SELECT id FROM learning_jobs WHERE dataset = ? AND status IN ({marks})",
            (dataset_id, *(s.value for s in UNFINISHED)),
        )
        return [str(r[0]) for r in rows]

    # --- measured sizes ------------------------------------------------------------
    def measured(self, key: str) -> int | None:
        row = self._db.conn.execute(
            "SELECT bytes FROM learning_sizes WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else int(row[0])

    def remember(self, key: str, nbytes: int, now: float) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO learning_sizes (key, bytes, measured_at) VALUES (?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET bytes = excluded.bytes, "
                "measured_at = excluded.measured_at",
                (key, nbytes, now),
            )
