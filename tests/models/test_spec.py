"""Model specs: defaults that depend on the backend, and the embeddings field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from moc.models.spec import REMOTE_PARALLEL, ModelSpec

REMOTE = {"name": "big", "backend": "openai", "url": "http://10.0.0.5:8000/v1"}


def test_a_remote_server_gets_many_slots_unless_told() -> None:
    assert ModelSpec.model_validate(REMOTE).parallel == REMOTE_PARALLEL == 256
    assert ModelSpec.model_validate({**REMOTE, "parallel": 4}).parallel == 4
    local = ModelSpec.model_validate({"name": "m", "path": "/m.gguf"})
    assert local.parallel == 1  # a llama.cpp slot costs a KV cache of ctx cells
    ollama = {"name": "o", "backend": "ollama", "url": "http://h:11434"}
    assert ModelSpec.model_validate(ollama).parallel == 1


def test_embeddings_are_off_unless_asked_and_only_for_llamacpp() -> None:
    assert ModelSpec.model_validate({"name": "m", "path": "/m.gguf"}).embeddings is False
    assert ModelSpec.model_validate({"name": "m", "path": "/m.gguf", "embeddings": True}).embeddings
    with pytest.raises(ValidationError, match="embeddings does not apply to backend openai"):
        ModelSpec.model_validate({**REMOTE, "embeddings": True})
    with pytest.raises(ValidationError, match="embeddings"):
        ModelSpec.model_validate({"name": "m", "path": "/m.gguf", "embeddings": "maybe"})
