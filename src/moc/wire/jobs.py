"""An async job as ``/v1/jobs`` answers it."""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed

# moc.jobs.model.JobStatus and moc.scheduler.waiting.Priority, as sent.
JobStatus = Literal["pending", "queued", "running", "complete", "failed", "cancelled"]
PriorityLabel = Literal["high", "normal", "low"]


@closed
class Job(TypedDict):
    """A request to a model that runs when the queue gets to it; the answer is kept."""

    job_id: str
    """the job's id"""
    object: Literal["job"]
    model: str
    """the model it asks"""
    priority: PriorityLabel
    """the queue it waits in"""
    status: JobStatus
    """pending (stored), queued, running, then complete, failed or cancelled"""
    metadata: dict[str, Any]
    """what the submission carried, returned unchanged"""
    attempts: int
    """how many times it was sent to the backend"""
    output: str | None
    """the generated text of a chat completion, for clients that want only that"""
    result: dict[str, Any] | None
    """the backend's answer, once complete"""
    error: dict[str, Any] | None
    """the error envelope's body, once failed"""
    created_at: str
    """UTC, ISO 8601 with milliseconds"""
    queued_at: str | None
    """when it entered the scheduler's queue"""
    started_at: str | None
    """when it was sent to the backend"""
    finished_at: str | None
    """when it completed, failed or was cancelled"""


@closed
class JobList(TypedDict):
    """Jobs, newest first."""

    object: Literal["list"]
    data: list[Job]
