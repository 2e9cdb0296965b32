"""Adapters that requests may name: the latest version of each adapter
artifact whose base is a model moc serves, and that carries the files its
base's runtime loads (llama.cpp: ``adapter.gguf``, written when a LoRA for a
llama.cpp base is registered; vLLM: PEFT's folder).

A request asks for one by its own name or as ``base:adapter``; it is served
by the base model's runtime, which loads every adapter of its base. Reading
the registry's rows only: on the event loop, no file is touched here
(verification is the registry's).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from moc.artifacts import lora_gguf
from moc.artifacts.manifest import Kind
from moc.artifacts.registry import Registry
from moc.artifacts.store import Artifact
from moc.errors import ArtifactInvalid
from moc.models.gguf_facts import GgufError, gguf_architecture, read_gguf_facts
from moc.models.served import GGUF_ADAPTER, ServedAdapter
from moc.models.spec import ModelSpec


class AdapterCatalog:
    def __init__(self, registry: Registry, model_names: Callable[[], set[str]]) -> None:
        self._registry = registry
        self._models = model_names

    def _served(self) -> dict[str, Artifact]:
        """Each adapter name's latest version whose base is a model moc serves."""
        latest: dict[str, Artifact] = {}
        for a in self._registry.all():  # by name, then version: the last one wins
            if a.manifest.kind is Kind.ADAPTER:
                latest[a.name] = a
        models = self._models()
        return {name: a for name, a in latest.items() if a.manifest.base in models}

    def lookup(self, name: str) -> Artifact | None:
        """The adapter a request names (``adapter`` or ``base:adapter``), or None."""
        base, colon, adapter = name.rpartition(":")  # an adapter's name holds no ":"
        found = self._served().get(adapter)
        if found is None or (colon and found.manifest.base != base):
            return None
        return found

    def for_base(self, base: str, needs: frozenset[str]) -> list[Artifact]:
        """The adapters of ``base`` that carry the files its runtime ``needs``, by name."""
        return sorted(
            (a for a in self._served().values() if a.manifest.base == base and has(a, needs)),
            key=lambda a: a.name,
        )

    async def verified(self, adapter: Artifact) -> ServedAdapter:
        """The adapter as a runtime loads it, every file verified first."""
        folder = await self._registry.verify(adapter)
        return ServedAdapter(adapter.name, folder, adapter.manifest.size_bytes)


def has(adapter: Artifact, files: frozenset[str]) -> bool:
    return files <= {f.path for f in adapter.manifest.files}


def prepare(files: dict[str, Path], signed: bool, *, base: ModelSpec) -> None:
    """An adapter added by hand, for ``base``: its llama.cpp file made from its
    PEFT files when it came without one (and unsigned: a file added to a
    signed set would void its signature), then checked against the base.
    ArtifactInvalid naming the problem. Blocking: from a worker thread."""
    peft = {"adapter_config.json", "adapter_model.safetensors"} <= set(files)
    if GGUF_ADAPTER not in files and peft and not signed and base.path is not None:
        _convert(files, base.path)
    check_base(files, base)


def _convert(files: dict[str, Path], base_gguf: Path) -> None:
    try:
        facts = read_gguf_facts(base_gguf)
    except GgufError:
        return  # not a GGUF base: nothing llama.cpp would load it for
    folder = files["adapter_config.json"].parent
    config = {"num_attention_heads": facts.heads, "num_key_value_heads": facts.kv_heads}
    try:
        files[GGUF_ADAPTER] = lora_gguf.convert(folder, folder / GGUF_ADAPTER, base_config=config)
    except (ValueError, KeyError, OSError) as exc:
        raise ArtifactInvalid(
            f"adapter_model.safetensors: cannot be made a llama.cpp adapter: {exc}", field="files"
        ) from None


def check_base(files: Mapping[str, Path], base: ModelSpec) -> None:
    """ArtifactInvalid when an adapter's llama.cpp file is for another
    architecture than its base's (it would load, and answer nonsense).
    Blocking (reads both files' headers): from a worker thread."""
    adapter = files.get(GGUF_ADAPTER)
    if adapter is None or base.path is None:
        return  # nothing llama.cpp would load, or a base known only at its load
    try:
        mine, theirs = gguf_architecture(adapter), gguf_architecture(base.path)
    except GgufError as exc:
        raise ArtifactInvalid(f"{GGUF_ADAPTER}: {exc}", field="files") from None
    if mine != theirs:
        raise ArtifactInvalid(
            f"{GGUF_ADAPTER} is a LoRA for the {mine} architecture; base model {base.name} "
            f"is {theirs}",
            field="base",
        )
