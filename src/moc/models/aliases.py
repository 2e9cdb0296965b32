"""Names that stand for a model, or for a model with an adapter: an agent map
(``AGENT_MODEL_MAP.json``), read once at startup.

The file is a JSON object from an agent's (or any alias's) name to what it
asks for::

    {"support": {"model": "tiny-base", "adapter": "support-lora"},
     "writer": "tiny-chat",
     "coder": "tiny-base:coder-lora"}

A request that names ``support`` is served as one naming
``tiny-base:support-lora``: the base model's runtime with that adapter
applied. The models must be in the catalog (checked here, at startup); an
adapter is looked up in the registry when a request names it, so the map may
name one a learning job has not made yet.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from moc.errors import ConfigError
from moc.models.spec import NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)


def read_aliases(path: Path, models: set[str]) -> dict[str, str]:
    """alias → ``model`` or ``model:adapter``; ConfigError naming the entry."""
    where = f"artifacts.agent_map ({path})"
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{where}: not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: must be a JSON object of name → model")
    return {alias: _target(alias, value, models, where) for alias, value in document.items()}


def _target(alias: str, value: Any, models: set[str], where: str) -> str:
    if not _NAME.fullmatch(alias):
        raise ConfigError(f"{where}: {alias!r}: a name must match {NAME_PATTERN}")
    if alias in models:
        raise ConfigError(f"{where}: {alias!r} is a model's name; an alias needs a name of its own")
    if isinstance(value, str):
        # a model's own name may hold ":" (Ollama's "qwen2.5:7b"); an adapter's never does
        whole = value in models or ":" not in value
        model, _, adapter = (value, "", "") if whole else value.rpartition(":")
    elif isinstance(value, dict) and set(value) <= {"model", "adapter"} and "model" in value:
        model, adapter = value["model"], value.get("adapter") or ""
    else:
        raise ConfigError(
            f"{where}: {alias!r}: expected 'model', 'model:adapter' or "
            f'{{"model": …, "adapter": …}}, got {json.dumps(value)[:80]}'
        )
    if model not in models:
        known = ", ".join(sorted(models)) or "none"
        raise ConfigError(f"{where}: {alias!r}: no model {model!r} (known: {known})")
    if not isinstance(adapter, str) or (adapter and not _NAME.fullmatch(adapter)):
        raise ConfigError(f"{where}: {alias!r}: adapter {adapter!r} is not a name")
    return f"{model}:{adapter}" if adapter else model
