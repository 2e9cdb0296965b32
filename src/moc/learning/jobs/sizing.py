"""How much memory a learning job asks for: the estimate before its first run
(docs/learning.md writes the formulas down), then what the same base, kind
and settings were measured using, with headroom."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from moc.learning import estimate
from moc.learning.jobs.model import Kind, LearningJob

HEADROOM = 1.15  # over the measured peak: a run's use varies a little
# The settings that change what a run uses; others (seed, learning rate) do not.
_SIZE_PARAMS = {
    Kind.SFT: ("rank", "target_modules", "batch_size", "seq_len"),
    Kind.QUANTIZE: ("type",),
    Kind.INDEX: ("embedder", "batch_size", "chunk_size"),
}


def key(job: LearningJob) -> str:
    """What measured sizes are remembered by: (kind, what it reads, settings)."""
    settings = {name: job.params.get(name) for name in _SIZE_PARAMS[job.kind]}
    source = job.base or job.model or ""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return f"{job.kind.value}|{source}|{digest}"


def with_headroom(peak: int) -> int:
    return int(peak * HEADROOM)


def estimate_bytes(job: LearningJob, sources: dict[str, Path]) -> int:
    if job.kind is Kind.SFT:
        return estimate.sft_job_bytes(sources["base"], job.params)
    if job.kind is Kind.QUANTIZE:
        return estimate.quantize_job_bytes(sources["model"].stat().st_size, str(job.params["type"]))
    return estimate.index_job_bytes(job.params)
