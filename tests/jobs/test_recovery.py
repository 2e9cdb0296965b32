"""The rule for jobs an earlier moc left queued or running; no store, no loop."""

from __future__ import annotations

from moc.jobs.model import JobStatus
from moc.jobs.recovery import Interrupted, recover

QUEUED, RUNNING = JobStatus.QUEUED, JobStatus.RUNNING


def test_a_running_job_counts_the_cut_attempt_and_runs_again() -> None:
    recovery = recover([Interrupted("a", RUNNING, 0)], max_attempts=3)
    assert recovery.requeue == (Interrupted("a", RUNNING, 1),)
    assert recovery.fail == ()


def test_a_queued_job_had_not_started_and_keeps_its_attempts() -> None:
    recovery = recover([Interrupted("a", QUEUED, 2)], max_attempts=3)
    assert recovery.requeue == (Interrupted("a", QUEUED, 2),)
    assert recovery.fail == ()


def test_a_job_that_reaches_the_limit_fails_with_the_reason() -> None:
    recovery = recover(
        [Interrupted("cut", RUNNING, 2), Interrupted("spent", QUEUED, 3)], max_attempts=3
    )
    assert recovery.requeue == ()
    assert recovery.fail == (Interrupted("cut", RUNNING, 3), Interrupted("spent", QUEUED, 3))
    assert recovery.error["code"] == "interrupted"
    assert "3 times" in recovery.error["message"]


def test_nothing_interrupted_decides_nothing() -> None:
    recovery = recover([], max_attempts=3)
    assert (recovery.requeue, recovery.fail) == ((), ())
