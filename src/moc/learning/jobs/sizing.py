"""How much memory a learning job asks for: the estimate before its first run
(docs/learning.md writes the formulas down), then what the same base, kind
and settings were measured using, with headroom."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from moc.errors import LearningJobInvalid
from moc.learning import estimate
from moc.learning.jobs.model import Kind, LearningJob
from moc.learning.worker.quant_plan import quantize_bytes

# An index job's child: the embedder (MiniLM is 90 MB of weights) in a torch
# process (the sft child's runtime alone peaks at 419 MiB), or an HTTP client
# of moc's own gateway. Measured peaks replace these after the first run.
INDEX_SENTENCE_TRANSFORMERS = 640 * 1024 * 1024
INDEX_VIA_MOC = 256 * 1024 * 1024

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
    """Raises InvalidRequest naming the field whose value cannot be sized."""
    params = job.params
    if job.kind is Kind.SFT:
        try:
            dims = estimate.read_dims(sources["base"])
        except (OSError, ValueError) as exc:
            raise LearningJobInvalid("base", f"cannot read the model's config: {exc}") from None
        try:
            lora = dims.lora_params(int(params["rank"]), params["target_modules"])
        except ValueError as exc:
            raise LearningJobInvalid("params.target_modules", str(exc)) from None
        return estimate.sft_bytes(
            dims.params_count,
            dims.hidden,
            dims.layers,
            4,  # float32 on the CPU; the worker picks bfloat16 on a GPU, which is smaller
            lora,
            int(params["batch_size"]),
            int(params["seq_len"]),
            quantized_4bit=False,
            vocab=dims.vocab,
        )
    if job.kind is Kind.QUANTIZE:
        try:
            size = sources["model"].stat().st_size
        except OSError as exc:
            raise LearningJobInvalid("model", f"cannot read its file: {exc}") from None
        return quantize_bytes(size, str(params["type"]))
    if params["embedder"]["kind"] == "moc":
        return INDEX_VIA_MOC
    return INDEX_SENTENCE_TRANSFORMERS
