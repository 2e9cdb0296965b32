"""The demo catalog: tiny models moc writes itself when none are declared.

They make a fresh machine useful at once (``moc load tiny-chat``, and a chat
through the gateway) with no GPU and no download. The models are random:
they answer with printable gibberish of exactly the length asked for, serve
embeddings, and follow a grammar (JSON mode). Files are written once into
``<data dir>/demo-models`` and reused while their format is current.
"""

from __future__ import annotations

from pathlib import Path

from moc.models.gguf_facts import GgufError, read_gguf_facts
from moc.models.spec import ModelSpec
from moc.models.tiny import VOCAB, TinySpec, write_tiny_gguf

DEMO = (
    TinySpec("tiny-chat", ffn=128, seed=1),
    TinySpec("tiny-code", ffn=256, seed=2),
    TinySpec("tiny-long", ffn=512, seed=3),
)


def demo_catalog(data_dir: Path) -> list[ModelSpec]:
    folder = data_dir / "demo-models"
    specs = []
    for tiny in DEMO:
        path = folder / f"{tiny.name}.gguf"
        if _stale(path):
            write_tiny_gguf(path, tiny)
        specs.append(
            ModelSpec(name=tiny.name, path=path, ctx=2048, keep_alive=300.0, embeddings=True)
        )
    return specs


def _stale(path: Path) -> bool:
    """Missing, unreadable, or written by an older moc: files of the 259-token
    vocabulary broke JSON mode and declared no pooling for embeddings."""
    try:
        return read_gguf_facts(path).vocab != VOCAB
    except GgufError:
        return True
