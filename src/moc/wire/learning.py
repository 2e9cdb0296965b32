"""Learning jobs and index answers as ``/v1/learning/…`` and ``/v1/indexes/…`` send them."""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed

# moc.learning.jobs.model.Kind and Status, as sent.
LearningKind = Literal["sft", "quantize", "index"]
LearningStatus = Literal[
    "pending", "queued", "running", "yielding", "yielded", "complete", "failed", "cancelled"
]


@closed
class LearningProgress(TypedDict):
    """How far a learning job is."""

    step: int
    """steps done (sft: optimizer steps; quantize: tensors; index: chunks embedded)"""
    total: int | None
    """steps in all; null: not known yet"""
    loss: float | None
    """the last training loss (sft)"""
    tokens_per_s: float | None
    """training throughput of the last step (sft)"""
    eta_s: float | None
    """seconds left at this run's pace"""


@closed
class LearningJob(TypedDict):
    """A fine-tune, quantization or indexing job that holds memory through the ledger."""

    id: str
    """the job's id (lj_ and 16 hex digits)"""
    kind: LearningKind
    """sft (a LoRA fine-tune), quantize (a GGUF model), index (a documents dataset)"""
    status: LearningStatus
    """pending, queued (for memory), running, yielding, yielded, complete, failed, cancelled"""
    base: str | None
    """sft: the base model"""
    model: str | None
    """quantize: the source model"""
    dataset: str | None
    """sft, index: the dataset's id"""
    goal: str | None
    """the goal it serves"""
    priority: int
    """0 … 100; below a model load's 50, it yields to inference"""
    device: str | None
    """the device asked for; null: where it fits best"""
    params: dict[str, Any]
    """the kind's settings, defaults filled in"""
    progress: LearningProgress
    """how far it is"""
    bytes: int | None
    """the memory it asks for"""
    bytes_source: str | None
    """estimate, or measured (what the same base, kind and settings used before)"""
    held_on: str | None
    """the device it holds memory on now; null: it holds none"""
    peak_used_bytes: int | None
    """the most its process was measured using"""
    yields: int
    """times it gave its memory back to inference"""
    resumes: int
    """times it resumed from a checkpoint"""
    error: str | None
    """why it failed, with the last lines of its log"""
    output: dict[str, Any] | None
    """what it made, once complete: paths and figures (loss, agreement, chunks)"""
    created_at: str
    """UTC, ISO 8601 with milliseconds"""
    started_at: str | None
    """when it first ran"""
    finished_at: str | None
    """when it completed, failed or was cancelled"""


@closed
class LearningEvent(TypedDict):
    """One of a learning job's server-sent events."""

    event: Literal["status", "started", "progress", "checkpoint", "yielded"]
    """status: its status changed; started, progress, checkpoint, yielded: from its process"""
    job: LearningJob
    """the job as it is now"""


@closed
class LearningJobList(TypedDict):
    """Learning jobs, newest first."""

    jobs: list[LearningJob]


@closed
class IndexHit(TypedDict):
    """A chunk of an index that matches a query."""

    text: str
    score: float
    """cosine similarity, −1 … 1"""
    source: str | None
    """the document's source, as the dataset named it"""
    doc_id: str | None


@closed
class IndexResults(TypedDict):
    """The top-k chunks for a query, best first."""

    index: str
    results: list[IndexHit]


@closed
class IndexList(TypedDict):
    """The indexes ``index`` jobs made, by name."""

    indexes: list[str]
