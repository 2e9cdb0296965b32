"""Async jobs: what a job is, its statuses, and the validated submission."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from moc.scheduler.waiting import Priority


class JobStatus(StrEnum):
    PENDING = "pending"  # accepted and stored; not in the scheduler's queue yet
    QUEUED = "queued"  # waiting in the scheduler's queue
    RUNNING = "running"  # sent to the model's backend
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.QUEUED, JobStatus.RUNNING})
TERMINAL_STATUSES = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED})

MAX_METADATA = 16 * 1024


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


class JobSubmission(BaseModel):
    """``POST /v1/jobs``: a prompt or chat messages for a model, run when its turn comes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=128)
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = Field(None, min_length=1)
    priority: str = "normal"
    metadata: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="OpenAI fields passed to the backend (max_tokens, temperature, …)",
    )

    @model_validator(mode="after")
    def _one_input(self) -> JobSubmission:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        try:  # what the store cannot write (integers past 64 bits) is refused here
            size = len(orjson.dumps(self.metadata))
            orjson.dumps(self.body())
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"cannot be stored as JSON: {exc}") from None
        if size > MAX_METADATA:
            raise ValueError(f"metadata is {size} bytes encoded; the limit is {MAX_METADATA}")
        reserved = {"model", "messages", "stream"} & set(self.options)
        if reserved:
            raise ValueError(f"options may not set {', '.join(sorted(reserved))}")
        Priority.parse(self.priority)
        return self

    def body(self) -> dict[str, Any]:
        """The OpenAI chat.completions body the job sends."""
        messages = self.messages or [{"role": "user", "content": self.prompt}]
        return {**self.options, "model": self.model, "messages": messages, "stream": False}


@dataclass
class Job:
    id: str
    model: str
    priority: Priority
    body: dict[str, Any]
    metadata: dict[str, Any]
    created_at: float
    status: JobStatus = JobStatus.PENDING
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    owner: str = ""  # the key (or token subject) that submitted it; "" with auth off
