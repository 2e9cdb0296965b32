"""Chunking and the index job's parameters: pure functions."""

from __future__ import annotations

import itertools

import pytest

from moc.errors import InvalidRequest
from moc.learning.worker.chunking import chunk_text
from moc.learning.worker.index_params import DEFAULT_MODEL, EmbedderSpec, parse_params


def test_short_and_empty_texts() -> None:
    assert chunk_text("", 10, 2) == []
    assert chunk_text("   \n ", 10, 2) == []
    (only,) = chunk_text("  hello  ", 10, 2)
    assert (only.text, only.position, only.start) == ("hello", 0, 2)


def test_windows_without_whitespace_step_by_size_minus_overlap() -> None:
    text = "abcdefghijklmnopqrstuvwxyz"
    assert [c.text for c in chunk_text(text, 10, 0)] == ["abcdefghij", "klmnopqrst", "uvwxyz"]
    chunks = chunk_text(text, 10, 3)
    assert [c.text for c in chunks] == ["abcdefghij", "hijklmnopq", "opqrstuvwx", "vwxyz"]
    assert [c.start for c in chunks] == [0, 7, 14, 21]
    assert [c.position for c in chunks] == [0, 1, 2, 3]
    for chunk in chunks:
        assert text[chunk.start : chunk.start + len(chunk.text)] == chunk.text
        assert len(chunk.text) <= 10


def test_an_exact_multiple_ends_without_a_sliver() -> None:
    assert [c.text for c in chunk_text("a" * 20, 10, 0)] == ["a" * 10, "a" * 10]


def test_windows_end_after_whitespace_in_their_second_half() -> None:
    text = "alpha beta gamma delta epsilon"
    chunks = chunk_text(text, 12, 0)
    assert [c.text for c in chunks] == ["alpha beta", "gamma delta", "epsilon"]
    # whitespace only in the first half does not shorten the window
    assert chunk_text("ab cdefghijklmnop", 10, 0)[0].text == "ab cdefghi"


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    words = " ".join(f"w{i:02d}" for i in range(40))
    chunks = chunk_text(words, 30, 8)
    assert all(len(c.text) <= 30 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.start + len(before.text)  # they overlap
        assert after.start > before.start  # and always move on
    covered = set()
    for c in chunks:
        covered |= set(range(c.start, c.start + len(c.text)))
    assert {i for i, ch in enumerate(words) if not ch.isspace()} <= covered


def test_the_largest_overlap_still_ends() -> None:
    chunks = chunk_text("x" * 50, 5, 4)
    assert len(chunks) == 46
    assert chunks[-1].start == 45


@pytest.mark.parametrize(
    ("size", "overlap", "field"),
    [
        (0, 0, "params.chunk_size"),
        (10, 10, "params.chunk_overlap"),
        (10, -1, "params.chunk_overlap"),
    ],
)
def test_bad_sizes_name_the_field(size: int, overlap: int, field: str) -> None:
    with pytest.raises(InvalidRequest) as bad:
        chunk_text("text", size, overlap)
    assert bad.value.field == field


def test_params_defaults_and_errors() -> None:
    params = parse_params({"name": "docs"})
    assert (params.chunk_size, params.chunk_overlap, params.batch_size) == (800, 100, 32)
    assert params.embedder == EmbedderSpec("sentence-transformers", DEFAULT_MODEL)
    assert parse_params({"name": "d", "chunk_size": 50}).chunk_overlap == 49
    moc = parse_params({"name": "d", "embedder": {"kind": "moc", "model": "emb"}})
    assert moc.embedder == EmbedderSpec("moc", "emb")
    for params_, field in [
        ({}, "params.name"),
        ({"name": "Bad Name"}, "params.name"),
        ({"name": "d", "chunk_size": "800"}, "params.chunk_size"),
        ({"name": "d", "chunk_size": 200_000}, "params.chunk_size"),
        ({"name": "d", "chunk_size": 100, "chunk_overlap": 100}, "params.chunk_overlap"),
        ({"name": "d", "batch_size": 0}, "params.batch_size"),
        ({"name": "d", "embedder": "minilm"}, "params.embedder"),
        ({"name": "d", "embedder": {"kind": "openai"}}, "params.embedder.kind"),
        ({"name": "d", "embedder": {"kind": "moc"}}, "params.embedder.model"),
    ]:
        with pytest.raises(InvalidRequest) as bad:
            parse_params(params_)
        assert bad.value.field == field, params_
