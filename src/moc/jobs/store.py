"""Async jobs in SQLite: the record of every accepted job, its status and result.

A job is written when it is accepted and at every change of status, before
the change is acted on, so a ``kill -9`` of moc loses none: at the next start
the runner reads the jobs caught queued or running (:meth:`JobStore.interrupted`),
decides which run again (:func:`moc.jobs.recovery.recover`), and
:meth:`JobStore.settle` writes that decision in one transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from moc.errors import StoreUnavailable
from moc.jobs.model import ACTIVE_STATUSES, TERMINAL_STATUSES, Job, JobStatus
from moc.jobs.recovery import Interrupted, Recovery
from moc.scheduler.waiting import Priority
from moc.store.sqlite import Database


def _one_of(statuses: frozenset[JobStatus]) -> tuple[str, tuple[str, ...]]:
    """``IN (?,...)`` and its arguments, so the SQL reads the named sets of statuses."""
    values = tuple(sorted(s.value for s in statuses))
    return f"IN ({','.join('?' * len(values))})", values


_ACTIVE, _ACTIVE_ARGS = _one_of(ACTIVE_STATUSES)
_TERMINAL, _TERMINAL_ARGS = _one_of(TERMINAL_STATUSES)
_INTERRUPTED, _INTERRUPTED_ARGS = _one_of(frozenset({JobStatus.QUEUED, JobStatus.RUNNING}))

_COLUMNS = (
    "id, model, priority, status, body, metadata, result, error, attempts, "
    "created_at, queued_at, started_at, finished_at, owner"
)


def _dump(value: dict[str, Any] | None) -> bytes | None:
    return None if value is None else orjson.dumps(value, default=str)


def _load(value: bytes | str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    loaded: dict[str, Any] = orjson.loads(value)
    return loaded


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        id=row[0],
        model=row[1],
        priority=Priority(row[2]),
        status=JobStatus(row[3]),
        body=_load(row[4]) or {},
        metadata=_load(row[5]) or {},
        result=_load(row[6]),
        error=_load(row[7]),
        attempts=row[8],
        created_at=row[9],
        queued_at=row[10],
        started_at=row[11],
        finished_at=row[12],
        owner=row[13],
    )


class JobStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self._db.path}: {exc}") from exc

    def insert(self, job: Job) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                f"INSERT INTO jobs ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job.id,
                    job.model,
                    int(job.priority),
                    job.status.value,
                    _dump(job.body),
                    _dump(job.metadata),
                    _dump(job.result),
                    _dump(job.error),
                    job.attempts,
                    job.created_at,
                    job.queued_at,
                    job.started_at,
                    job.finished_at,
                    job.owner,
                ),
            )

    def save(self, job: Job) -> None:
        """Write the job's status, timestamps, attempts and outcome."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, result = ?, error = ?, attempts = ?, "
                "queued_at = ?, started_at = ?, finished_at = ? WHERE id = ?",
                (
                    job.status.value,
                    _dump(job.result),
                    _dump(job.error),
                    job.attempts,
                    job.queued_at,
                    job.started_at,
                    job.finished_at,
                    job.id,
                ),
            )

    def get(self, job_id: str) -> Job | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def find(
        self,
        status: JobStatus | None = None,
        model: str | None = None,
        limit: int = 100,
        owner: str | None = None,
    ) -> list[Job]:
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if status is not None:
            where.append("status = ?")
            args.append(status.value)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM jobs {clause} ORDER BY created_at DESC LIMIT ?",
            (*args, limit),
        )
        return [_job(r) for r in rows]

    def next_pending(self, limit: int) -> list[Job]:
        """Pending jobs in the order they should enter the queue: priority, then age."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM jobs WHERE status = ? ORDER BY priority, created_at LIMIT ?",
            (JobStatus.PENDING.value, limit),
        )
        return [_job(r) for r in rows]

    def counts(self) -> dict[tuple[str, int], int]:
        """Jobs by (status, priority)."""
        rows = self._read("SELECT status, priority, COUNT(*) FROM jobs GROUP BY status, priority")
        return {(r[0], int(r[1])): int(r[2]) for r in rows}

    def active_count(self) -> int:
        rows = self._read(f"SELECT COUNT(*) FROM jobs WHERE status {_ACTIVE}", _ACTIVE_ARGS)
        return int(rows[0][0])

    def interrupted(self) -> list[Interrupted]:
        """Jobs caught queued or running: at startup, those an earlier moc left unfinished."""
        rows = self._read(
            f"SELECT id, status, attempts FROM jobs WHERE status {_INTERRUPTED}",
            _INTERRUPTED_ARGS,
        )
        return [Interrupted(str(i), JobStatus(s), int(a)) for i, s, a in rows]

    def settle(self, recovery: Recovery, now: float) -> None:
        """Write a recovery in one transaction.

        A kill -9 leaves either all of it or the rows it was decided from, and
        attempts are written as values rather than incremented, so deciding again
        at the next start counts each interruption once.
        """
        with self._db.transaction() as conn:
            conn.executemany(
                "UPDATE jobs SET status = ?, attempts = ?, queued_at = NULL, started_at = NULL "
                "WHERE id = ?",
                [(JobStatus.PENDING.value, j.attempts, j.id) for j in recovery.requeue],
            )
            error = _dump(recovery.error)
            conn.executemany(
                "UPDATE jobs SET status = ?, attempts = ?, error = ?, finished_at = ? WHERE id = ?",
                [(JobStatus.FAILED.value, j.attempts, error, now, j.id) for j in recovery.fail],
            )

    def forget_finished(self, before: float) -> int:
        with self._db.transaction() as conn:
            return conn.execute(
                f"DELETE FROM jobs WHERE status {_TERMINAL} AND finished_at < ?",
                (*_TERMINAL_ARGS, before),
            ).rowcount
