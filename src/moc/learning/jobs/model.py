"""Learning jobs as values: kinds, statuses, the validated request, the job.

A job's status moves along::

    pending ──▶ queued ──▶ running ──▶ complete | failed
       ▲          ▲          │  ▲
       │          │          ▼  │ (resumed from its checkpoint)
       │          └──── yielded ◀── yielding
       └─ (after a restart of moc)        any unfinished ──▶ cancelled

- ``pending``: accepted; waiting for its turn (``learning.max_parallel_jobs``, goals);
- ``queued``: its turn came; waiting for memory on a device (a lease);
- ``running``: its child process runs and holds the memory;
- ``yielding``: asked to give the memory back; checkpointing;
- ``yielded``: gave it back; resumes from its checkpoint when memory is free again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moc.leases.model import PRIORITY_MAX, PRIORITY_MIN

NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
INDEX_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
TINY_BASE = "tiny-base"


class Kind(StrEnum):
    SFT = "sft"
    QUANTIZE = "quantize"
    INDEX = "index"


class Status(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    YIELDING = "yielding"
    YIELDED = "yielded"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({Status.COMPLETE, Status.FAILED, Status.CANCELLED})
UNFINISHED = frozenset(Status) - FINISHED


def new_job_id() -> str:
    return "lj_" + secrets.token_hex(8)


# --- parameters, one model per kind -------------------------------------------------
class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SftParams(_Params):
    rank: int = Field(8, ge=1, le=256, description="LoRA rank")
    alpha: float = Field(16.0, gt=0, le=4096, description="LoRA alpha (scale = alpha / rank)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="module names, or all-linear (every projection)",
    )
    learning_rate: float = Field(1e-3, gt=0, le=1)
    epochs: int = Field(1, ge=1, le=1000)
    max_steps: int | None = Field(None, ge=1, le=10_000_000, description="overrides epochs")
    batch_size: int = Field(4, ge=1, le=1024)
    seq_len: int = Field(256, ge=8, le=131_072, description="tokens per example, at most")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    checkpoint_every: int | None = Field(
        None, ge=1, le=10_000_000, description="steps; default learning.checkpoint_every"
    )
    warmup_steps: int = Field(0, ge=0, le=10_000_000)
    max_grad_norm: float = Field(1.0, gt=0, le=1e6, description="gradients clipped to this norm")
    threads: int | None = Field(
        None, ge=1, le=1024, description="CPU threads, fixed for the job's life (exact resume)"
    )
    qlora: bool = Field(True, description="a 4-bit base where CUDA and bitsandbytes are present")

    @model_validator(mode="after")
    def _modules(self) -> SftParams:
        if isinstance(self.target_modules, str):
            return self
        if not 1 <= len(self.target_modules) <= 64:
            raise ValueError("target_modules: give 1 to 64 module names, or all-linear")
        for name in self.target_modules:
            if not name or len(name) > 128 or not name.replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"target_modules: {name!r} is not a module name")
        return self


QuantType = Literal["q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k"]


class QuantizeParams(_Params):
    type: QuantType = Field(description="q8_0 and q4_0 always; K-quants need llama-quantize")


class Embedder(_Params):
    kind: Literal["sentence-transformers", "moc"] = "sentence-transformers"
    model: str | None = Field(
        None,
        max_length=4096,
        description="sentence-transformers: a model folder (default: all-MiniLM-L6-v2); "
        "moc: the name of an embedding model moc serves",
    )

    @model_validator(mode="after")
    def _named(self) -> Embedder:
        if self.kind == "moc" and not self.model:
            raise ValueError("an embedder of kind moc needs model: the model moc serves")
        return self


class IndexParams(_Params):
    name: str = Field(pattern=INDEX_NAME_PATTERN, description="the index's name")
    chunk_size: int = Field(800, ge=16, le=100_000, description="characters per chunk")
    chunk_overlap: int = Field(100, ge=0, le=99_999)
    embedder: Embedder = Embedder()
    batch_size: int = Field(32, ge=1, le=4096, description="chunks embedded per call")

    @model_validator(mode="after")
    def _overlap(self) -> IndexParams:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap must be below chunk_size ({self.chunk_size}); "
                f"got {self.chunk_overlap}"
            )
        return self


PARAMS: dict[Kind, type[_Params]] = {
    Kind.SFT: SftParams,
    Kind.QUANTIZE: QuantizeParams,
    Kind.INDEX: IndexParams,
}


class LearningJobRequest(BaseModel):
    """``POST /v1/learning/jobs``: a fine-tune (sft), quantization or index job;
    ``params`` are the kind's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    base: str | None = Field(None, max_length=4096, description="sft: the base model")
    model: str | None = Field(None, max_length=128, description="quantize: a GGUF model moc knows")
    dataset: str | None = Field(None, max_length=128, description="sft, index: a dataset")
    goal: str | None = Field(None, max_length=128)
    priority: int | None = Field(None, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    device: str | None = Field(None, max_length=64, description="default: where it fits best")
    node: str | None = Field(
        None,
        max_length=48,
        description="in a cluster: the node to run it on; default: this one when it has what "
        "the job names, else a node that has",
    )
    params: dict[str, Any] = Field(default_factory=dict)


# --- the job --------------------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    step: int = 0
    total: int | None = None
    loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None


@dataclass(frozen=True)
class LearningJob:
    id: str
    kind: Kind
    params: dict[str, Any]  # validated for the kind, defaults filled in
    priority: int
    created_at: float
    status: Status = Status.PENDING
    base: str | None = None  # sft: the base model's name or folder
    model: str | None = None  # quantize: the source model's name
    dataset: str | None = None  # the dataset's id
    dataset_format: str | None = None
    goal: str | None = None
    device: str | None = None  # asked for; None: anywhere
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress = field(default_factory=Progress)
    error: str | None = None
    output: dict[str, Any] | None = None
    bytes: int | None = None  # what it holds (or will ask for) on a device
    bytes_source: str | None = None  # "estimate" | "measured"
    held_on: str | None = None  # the device it holds memory on now
    peak_used: int | None = None  # the most its process was measured using
    yields: int = 0
    resumes: int = 0
    seq: int = 0  # order of arrival, for FIFO within a goal
    owner: str = ""  # the key (or token subject) that submitted it; its memory counts to it
