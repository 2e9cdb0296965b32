"""The agent map (AGENT_MODEL_MAP.json) read at startup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moc.errors import ConfigError
from moc.models.aliases import read_aliases

MODELS = {"tiny-base", "tiny-chat", "qwen2.5:7b"}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "AGENT_MODEL_MAP.json"
    path.write_text(json.dumps(document))
    return path


def test_each_shape_of_entry_names_a_model_or_a_model_with_an_adapter(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "support": {"model": "tiny-base", "adapter": "support-lora"},
            "writer": "tiny-chat",
            "coder": "tiny-base:coder-lora",
            "ollama-style": "qwen2.5:7b",
            "plain": {"model": "tiny-chat"},
        },
    )
    assert read_aliases(path, MODELS) == {
        "support": "tiny-base:support-lora",
        "writer": "tiny-chat",
        "coder": "tiny-base:coder-lora",
        "ollama-style": "qwen2.5:7b",
        "plain": "tiny-chat",
    }


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"a": "no-such"}, "'a': no model 'no-such' (known: qwen2.5:7b, tiny-base, tiny-chat)"),
        ({"tiny-chat": "tiny-base"}, "'tiny-chat' is a model's name"),
        ({"a": {"model": "tiny-chat", "extra": 1}}, "'a': expected 'model', 'model:adapter'"),
        ({"a": 3}, "got 3"),
        ({"a b": "tiny-chat"}, "'a b': a name must match"),
        ({"a": "tiny-base:bad name"}, "adapter 'bad name' is not a name"),
        (["tiny-chat"], "must be a JSON object"),
    ],
)
def test_a_wrong_entry_stops_startup_naming_it(tmp_path: Path, document: object, says: str) -> None:
    with pytest.raises(ConfigError, match=r"artifacts\.agent_map") as info:
        read_aliases(write(tmp_path, document), MODELS)
    assert says in info.value.message


def test_an_unreadable_map_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        read_aliases(tmp_path / "absent.json", MODELS)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        read_aliases(tmp_path / "bad.json", MODELS)
