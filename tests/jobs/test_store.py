"""The job repository against a real SQLite file: recovery written as decided,
and the named sets of statuses in its queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moc.jobs.model import ACTIVE_STATUSES, TERMINAL_STATUSES, Job, JobStatus
from moc.jobs.recovery import Interrupted, recover
from moc.jobs.store import JobStore
from moc.scheduler.waiting import Priority
from moc.store.sqlite import Database


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    db = Database(tmp_path / "moc.db")
    yield JobStore(db)
    db.close()


def add(store: JobStore, job_id: str, status: JobStatus, attempts: int = 0) -> Job:
    job = Job(
        id=job_id,
        model="m",
        priority=Priority.NORMAL,
        body={"messages": []},
        metadata={},
        created_at=1.0,
        status=status,
        attempts=attempts,
        queued_at=2.0,
        started_at=3.0 if status is JobStatus.RUNNING else None,
    )
    store.insert(job)
    return job


def get(store: JobStore, job_id: str) -> Job:
    job = store.get(job_id)
    assert job is not None
    return job


def test_only_queued_and_running_jobs_are_interrupted(store: JobStore) -> None:
    for status in JobStatus:
        add(store, status.value, status, attempts=1)
    assert sorted(store.interrupted(), key=lambda j: j.id) == [
        Interrupted("queued", JobStatus.QUEUED, 1),
        Interrupted("running", JobStatus.RUNNING, 1),
    ]


def test_settle_writes_the_recovery(store: JobStore) -> None:
    add(store, "queued", JobStatus.QUEUED)
    add(store, "running", JobStatus.RUNNING)
    add(store, "spent", JobStatus.RUNNING, attempts=2)
    add(store, "done", JobStatus.COMPLETE)

    recovery = recover(store.interrupted(), max_attempts=3)
    store.settle(recovery, now=9.0)

    queued, running, spent, done = (get(store, i) for i in ("queued", "running", "spent", "done"))
    for again, attempts in ((queued, 0), (running, 1)):
        assert again.status is JobStatus.PENDING
        assert again.attempts == attempts
        assert (again.queued_at, again.started_at, again.finished_at) == (None, None, None)
    assert spent.status is JobStatus.FAILED
    assert spent.attempts == 3
    assert spent.error == recovery.error
    assert spent.finished_at == 9.0
    assert done.status is JobStatus.COMPLETE
    assert store.interrupted() == []


def test_active_count_and_cleanup_follow_the_named_sets(store: JobStore) -> None:
    for status in JobStatus:
        job = add(store, status.value, status)
        if status in TERMINAL_STATUSES:
            job.finished_at = 5.0
            store.save(job)
    assert store.active_count() == len(ACTIVE_STATUSES)
    assert store.forget_finished(before=6.0) == len(TERMINAL_STATUSES)
    assert {j.status for j in store.find(limit=10)} == ACTIVE_STATUSES
