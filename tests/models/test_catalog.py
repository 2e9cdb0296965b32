"""The catalog's names: models, and the vLLM adapters asked for by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from moc.errors import ModelNotFound
from moc.models.catalog import Catalog
from moc.models.spec import ModelSpec
from moc.models.store import SizeStore
from moc.store.sqlite import Database


def test_an_adapter_resolves_to_its_base_model(tmp_path: Path) -> None:
    specs = [
        ModelSpec(name="tiny", path=Path("/m/tiny.gguf")),
        ModelSpec.model_validate(
            {
                "name": "qwen",
                "backend": "vllm",
                "path": "/m/qwen",
                "gpu_memory_util": 0.5,
                "adapters": ["/lora/sql-agent", "/lora/support.safetensors"],
            }
        ),
    ]
    db = Database(tmp_path / "moc.db")
    try:
        catalog = Catalog(specs, SizeStore(db))
        assert catalog.resolve("tiny") == ("tiny", "tiny")
        assert catalog.resolve("sql-agent") == ("qwen", "sql-agent")
        assert catalog.resolve("support") == ("qwen", "support")
        with pytest.raises(ModelNotFound, match="known: qwen, tiny"):
            catalog.resolve("nope")
    finally:
        db.close()
