"""The demo catalog: files written once, rewritten when their format is old."""

from __future__ import annotations

import os
from pathlib import Path

from moc.models.demo import demo_catalog
from moc.models.gguf_facts import read_gguf_facts
from moc.models.tiny import VOCAB


def test_demo_models_serve_embeddings_and_current_files_are_kept(tmp_path: Path) -> None:
    specs = demo_catalog(tmp_path)
    assert [s.name for s in specs] == ["tiny-chat", "tiny-code", "tiny-long"]
    assert all(s.embeddings for s in specs)
    path = specs[0].path
    assert path is not None
    os.utime(path, ns=(1, 1))
    demo_catalog(tmp_path)
    assert path.stat().st_mtime_ns == 1  # reused, not written again


def test_an_unreadable_or_old_file_is_written_again(tmp_path: Path) -> None:
    first = demo_catalog(tmp_path)[0].path
    assert first is not None
    first.write_bytes(b"not a model")
    demo_catalog(tmp_path)
    assert read_gguf_facts(first).vocab == VOCAB
