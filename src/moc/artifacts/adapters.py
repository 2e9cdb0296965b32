"""Adapters that requests may name: the latest version of each adapter
artifact that carries a llama.cpp adapter file (``adapter.gguf``, written when
a LoRA for a llama.cpp base is registered) and whose base is a model moc
serves.

A request asks for one by its own name or as ``base:adapter``; it is served
by the base model's runtime, which loads every adapter of its base unapplied
and applies the one a request names. Reading the registry's rows only: on
the event loop, no file is touched here (verification is the registry's).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from moc.artifacts.manifest import Kind
from moc.artifacts.registry import Registry
from moc.artifacts.store import Artifact

GGUF_ADAPTER = "adapter.gguf"


class AdapterCatalog:
    def __init__(self, registry: Registry, model_names: Callable[[], set[str]]) -> None:
        self._registry = registry
        self._models = model_names

    def _served(self) -> dict[str, Artifact]:
        """Each adapter name's latest version that a llama.cpp base can load."""
        latest: dict[str, Artifact] = {}
        for a in self._registry.all():  # by name, then version: the last one wins
            if a.manifest.kind is Kind.ADAPTER:
                latest[a.name] = a
        models = self._models()
        return {
            name: a
            for name, a in latest.items()
            if a.manifest.base in models and any(f.path == GGUF_ADAPTER for f in a.manifest.files)
        }

    def lookup(self, name: str) -> Artifact | None:
        """The adapter a request names (``adapter`` or ``base:adapter``), or None."""
        base, colon, adapter = name.partition(":")
        found = self._served().get(adapter if colon else name)
        if found is None or (colon and found.manifest.base != base):
            return None
        return found

    def for_base(self, base: str) -> list[Artifact]:
        """The adapters a runtime of ``base`` loads, by name."""
        return sorted(
            (a for a in self._served().values() if a.manifest.base == base), key=lambda a: a.name
        )

    async def verified_file(self, adapter: Artifact) -> Path:
        """Its llama.cpp adapter file, every file of it verified first."""
        return await self._registry.verify(adapter) / GGUF_ADAPTER
