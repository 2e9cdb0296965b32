"""What happens to jobs an earlier moc left queued or running.

A job caught running had an attempt cut short, which counts against it; one
caught queued had not started. A job is run again unless its attempts have
reached the limit, so a job that kills moc each time it runs stops doing so
after ``max_attempts`` restarts instead of forever. Pure: the runner reads the
caught jobs from the store and writes the outcome back in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from moc.jobs.model import JobStatus


@dataclass(frozen=True)
class Interrupted:
    """A job found queued or running at startup, with its attempts so far."""

    id: str
    status: JobStatus
    attempts: int


@dataclass(frozen=True)
class Recovery:
    """The decision for every interrupted job; attempts are the values to store."""

    requeue: tuple[Interrupted, ...]  # back to pending, run again
    fail: tuple[Interrupted, ...]  # failed with ``error``
    error: dict[str, Any]


def recover(interrupted: Iterable[Interrupted], max_attempts: int) -> Recovery:
    requeue: list[Interrupted] = []
    fail: list[Interrupted] = []
    for job in interrupted:
        attempts = job.attempts + 1 if job.status is JobStatus.RUNNING else job.attempts
        counted = Interrupted(job.id, job.status, attempts)
        if attempts >= max_attempts:
            fail.append(counted)
        else:
            requeue.append(counted)
    error = {
        "code": "interrupted",
        "message": f"moc stopped while the job ran, {max_attempts} times; not retried",
    }
    return Recovery(tuple(requeue), tuple(fail), error)
