"""The learning side's demo: with no models declared, a fresh moc also holds a
small instruction dataset and a documents dataset, so that the README's
``moc train``, ``moc index`` and ``moc search`` work as written, and serves
``tiny-base`` itself under llama.cpp (the Hugging Face folder sft jobs train
on, converted to GGUF), so that the adapters those jobs make are served."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from moc.errors import MocError
from moc.learning import hf_to_gguf
from moc.learning.datasets import DatasetService
from moc.learning.jobs.model import TINY_BASE
from moc.learning.retrieval_set import PASSAGES
from moc.learning.tiny_hf import write_tiny_base
from moc.models.spec import ModelSpec
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

DEMO_QA = "demo-qa"
DEMO_DOCS = "demo-docs"
# What tiny-base learns in a minute on a CPU: one answer it would never give.
QA_ROWS = [
    {"prompt": "What is the answer?\n", "completion": "The answer is forty-two."},
    {"prompt": "Name a colour.\n", "completion": "Blue."},
    {"prompt": "Say hello.\n", "completion": "Hello there!"},
] * 2


def _jsonl(rows: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


DEMO_FILES = {
    DEMO_QA: _jsonl(QA_ROWS),
    DEMO_DOCS: _jsonl(
        [{"id": pid, "source": f"demo/{pid}", "text": text} for pid, text, _ in PASSAGES]
    ),
}


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def add_demo_datasets(datasets: DatasetService) -> None:
    """Add the demo datasets that are not there (one removed stays removed
    until the next start)."""
    known = {d.name for d in datasets.list()}
    for name, data in DEMO_FILES.items():
        if name in known:
            continue
        try:
            await datasets.add(name, _once(data))
        except MocError as exc:  # a full disk: the demo is a convenience, not a reason to stop
            event(log, logging.WARNING, "demo dataset not added", dataset=name, error=str(exc))


def demo_base_model(data_dir: Path) -> ModelSpec:
    """``tiny-base`` as llama.cpp serves it, written once (converted whole to a
    temporary file, then renamed into place)."""
    folder = write_tiny_base(data_dir / "learning" / "bases" / TINY_BASE)
    path = data_dir / "demo-models" / f"{TINY_BASE}.gguf"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=".part", dir=path.parent)
        os.close(fd)
        try:
            hf_to_gguf.convert(folder, Path(name))
            os.replace(name, path)
        finally:
            Path(name).unlink(missing_ok=True)
    return ModelSpec(name=TINY_BASE, path=path, ctx=512, keep_alive=300.0)
