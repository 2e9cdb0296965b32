"""Tiny GGUF models written from nothing, read back, and estimated."""

from __future__ import annotations

from pathlib import Path

import pytest

from moc.models.estimate import estimate
from moc.models.gguf_facts import GgufError, read_gguf_facts
from moc.models.tiny import TinySpec, write_tiny_gguf


def test_a_tiny_model_reads_back_with_its_shape(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "m.gguf", TinySpec("m", layers=3, ffn=96))
    facts = read_gguf_facts(path)
    assert facts.architecture == "llama"
    assert (facts.layers, facts.embedding, facts.heads, facts.kv_heads) == (3, 64, 4, 4)
    assert (facts.key_dim, facts.value_dim, facts.vocab) == (16, 16, 260)
    # f32 tensors: embeddings and output (260×64 each), norms, 3 blocks
    block = 4 * 64 * 64 + 3 * 64 * 96 + 2 * 64
    assert facts.weight_bytes == 4 * (2 * 260 * 64 + 64 + 3 * block)
    assert 100_000 < path.stat().st_size < 1_000_000


def test_sizes_differ_with_the_feed_forward_width(tmp_path: Path) -> None:
    sizes = [
        read_gguf_facts(write_tiny_gguf(tmp_path / f"{f}.gguf", TinySpec("m", ffn=f))).weight_bytes
        for f in (128, 256, 512)
    ]
    assert sizes == sorted(sizes)
    assert len(set(sizes)) == 3


def test_kv_cache_follows_the_formula(tmp_path: Path) -> None:
    facts = read_gguf_facts(write_tiny_gguf(tmp_path / "m.gguf", TinySpec("m")))
    one = estimate(facts, ctx=1024, parallel=1, device_kind="host")
    # layers × ctx × kv_heads × (key_dim + value_dim) × 2 bytes (f16) × parallel
    assert one.kv_cache == 2 * 1024 * 4 * (16 + 16) * 2
    four = estimate(facts, ctx=1024, parallel=4, device_kind="host")
    assert four.kv_cache == 4 * one.kv_cache
    assert four.weights == one.weights == facts.weight_bytes
    gpu = estimate(facts, ctx=1024, parallel=1, device_kind="nvidia")
    assert gpu.runtime > one.runtime  # a CUDA context costs more than a host process
    assert one.total == one.weights + one.kv_cache + one.compute + one.runtime


def test_a_file_that_is_not_gguf_is_named_in_the_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all" * 10)
    with pytest.raises(GgufError, match=r"bad\.gguf: not a readable GGUF file"):
        read_gguf_facts(bad)
    with pytest.raises(GgufError, match="no such file"):
        read_gguf_facts(tmp_path / "missing.gguf")


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "m.gguf", TinySpec("m"))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(GgufError, match=r"m\.gguf"):
        read_gguf_facts(path)
