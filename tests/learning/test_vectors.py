"""The index file: written by the builder, searched by cosine, reloaded when it changes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from moc.errors import InvalidRequest, NotFound
from moc.learning.vectors import ChunkRow, IndexBuilder, IndexFile


def _build(path: Path, vectors: np.ndarray, tag: str = "") -> Path:
    builder = IndexBuilder(path, vectors.shape[1])
    rows = [ChunkRow(f"doc{i}", f"src{i}", f"{tag}text {i}", 0, 0) for i in range(len(vectors))]
    builder.add(rows[:2], vectors[:2])
    builder.add(rows[2:], vectors[2:])
    return builder.finish({"name": "t", "embedder": {"kind": "test"}, "documents": len(rows)})


def test_search_ranks_by_cosine(tmp_path: Path) -> None:
    vectors = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3], [1, 1, 0]], dtype=np.float32)
    index = IndexFile.open(_build(tmp_path / "i.sqlite", vectors))
    assert index.meta["dim"] == 3
    assert index.meta["chunks"] == 4
    assert index.meta["normalized"] is True
    hits = index.search([0.0, 5.0, 0.1], 2)
    assert [h.doc_id for h in hits] == ["doc1", "doc3"]
    assert hits[0].score == pytest.approx(5 / np.hypot(5, 0.1), rel=1e-6)
    assert hits[1].score == pytest.approx(5 / np.hypot(5, 0.1) / np.sqrt(2), rel=1e-6)
    assert (hits[0].text, hits[0].source) == ("text 1", "src1")
    assert len(index.search([1, 1, 1], 100)) == 4  # k beyond the chunks: all of them
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_k_and_the_vector_are_checked(tmp_path: Path) -> None:
    index = IndexFile.open(_build(tmp_path / "i.sqlite", np.eye(4, dtype=np.float32)))
    for k in (0, 101, True, 2.5):
        with pytest.raises(InvalidRequest) as bad:
            index.search([1, 0, 0, 0], k)  # type: ignore[arg-type]
        assert bad.value.field == "k"
    with pytest.raises(InvalidRequest, match="must have 4 dimensions") as bad:
        index.search([1, 0, 0], 1)
    assert bad.value.field == "query_vector"
    with pytest.raises(InvalidRequest, match="not all zero"):
        index.search([0, 0, 0, 0], 1)


def test_a_replaced_file_is_loaded_again_and_a_missing_one_is_not_found(tmp_path: Path) -> None:
    path = _build(tmp_path / "i.sqlite", np.eye(3, dtype=np.float32))
    first = IndexFile.open(path)
    assert first.search([1, 0, 0], 1)[0].text == "text 0"
    assert IndexFile.open(path) is first  # one instance per file
    _build(path, np.eye(3, dtype=np.float32)[::-1].copy(), tag="new ")
    os.utime(path, ns=(1, 1))  # a distinct mtime even on a coarse clock
    assert first.search([1, 0, 0], 1)[0].text == "new text 2"
    path.unlink()
    with pytest.raises(NotFound):
        IndexFile.open(path)


def test_an_abandoned_build_leaves_nothing(tmp_path: Path) -> None:
    builder = IndexBuilder(tmp_path / "i.sqlite", 2)
    builder.add([ChunkRow("d", None, "t", 0, 0)], np.ones((1, 2), dtype=np.float32))
    builder.abandon()
    assert list(tmp_path.iterdir()) == []
