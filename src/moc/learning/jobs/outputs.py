"""What a finished learning job registers as an artifact: its output's files,
the kind, the base model it belongs to, what made it, and its figures.

    sft        an adapter:   the PEFT adapter folder, for the job's base model, with
                             the same LoRA as a llama.cpp adapter (adapter.gguf)
                             where the base is a LLaMA, so llama.cpp can serve it
    quantize   quantized:    the GGUF file, for the model it was made from
    index      an index:     the index file, under the index's name

Blocking (it lists and reads files): called from a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moc.artifacts import lora_gguf
from moc.artifacts.manifest import Kind as ArtifactKind
from moc.artifacts.manifest import Producer
from moc.learning.jobs.model import Kind, LearningJob
from moc.models.served import GGUF_ADAPTER
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

_METRICS = {
    Kind.SFT: ("final_loss", "steps", "trainable_params"),
    Kind.QUANTIZE: ("agreement", "bytes", "source_bytes"),
    Kind.INDEX: ("chunks", "documents", "dim", "docs_per_s"),
}


@dataclass(frozen=True)
class Registration:
    name: str
    kind: ArtifactKind
    files: dict[str, Path]
    base: str | None
    architecture: str | None
    producer: Producer
    metrics: dict[str, float]


def registration(
    job: LearningJob,
    output: dict[str, Any],
    sources: dict[str, Path],
    dataset_digest: str | None,
) -> Registration:
    producer = Producer(
        job=job.id,
        job_digest=request_digest(job),
        dataset=job.dataset,
        dataset_digest=dataset_digest,
        model=job.model,
    )
    metrics = {
        k: float(v)
        for k in _METRICS[job.kind]
        if isinstance(v := output.get(k), int | float) and not isinstance(v, bool)
    }
    if job.kind is Kind.SFT:
        folder = Path(output["adapter_dir"])
        _gguf_adapter(folder, sources.get("base"))
        files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
        return Registration(
            name=f"{job.base}-{job.id}",
            kind=ArtifactKind.ADAPTER,
            files=files,
            base=job.base,
            architecture=architecture(sources.get("base")),
            producer=producer,
            metrics=metrics,
        )
    path = Path(output["path"])
    if job.kind is Kind.QUANTIZE:
        return Registration(
            name=f"{job.model}-{job.params['type']}".lower(),
            kind=ArtifactKind.QUANTIZED,
            files={path.name: path},
            base=job.model,
            architecture=None,
            producer=producer,
            metrics=metrics,
        )
    return Registration(
        name=str(job.params["name"]),
        kind=ArtifactKind.INDEX,
        files={path.name: path},
        base=None,
        architecture=None,
        producer=producer,
        metrics=metrics,
    )


def _gguf_adapter(folder: Path, base: Path | None) -> None:
    """``adapter.gguf`` beside the PEFT files, for a base llama.cpp can run;
    none (and why, in the log) for one it cannot."""
    try:
        config = json.loads((base / "config.json").read_text()) if base else None
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict):
        return
    try:
        lora_gguf.convert(folder, folder / GGUF_ADAPTER, base_config=config)
    except ValueError as exc:
        event(log, logging.INFO, "adapter not converted for llama.cpp", folder=str(folder),
              reason=str(exc))  # fmt: skip


def request_digest(job: LearningJob) -> str:
    """The digest of what was asked: kind, sources and settings."""
    asked = {
        "kind": job.kind.value,
        "base": job.base,
        "model": job.model,
        "dataset": job.dataset,
        "params": job.params,
    }
    text = json.dumps(asked, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(text).hexdigest()


def architecture(base: Path | None) -> str | None:
    """A Hugging Face folder's ``model_type`` (llama, qwen2, …), or None."""
    if base is None:
        return None
    try:
        config = json.loads((base / "config.json").read_text())
    except (OSError, ValueError):
        return None
    found = config.get("model_type") if isinstance(config, dict) else None
    return found if isinstance(found, str) else None
