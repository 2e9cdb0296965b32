"""The catalog: every model moc may load, and what it knows about each size.

Owns the specs (fixed at startup) and a cache of GGUF facts keyed by the
file's fingerprint, so an edited file is read again. Reading a file is
blocking I/O; callers on the event loop use :meth:`Catalog.facts_async`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from moc.errors import ModelNotFound
from moc.models.estimate import RUNTIME_BYTES, Estimate, estimate, estimate_from_file
from moc.models.gguf_facts import GgufError, GgufFacts, read_gguf_facts
from moc.models.spec import ModelSpec
from moc.models.store import SizeKey, SizeStore


def fingerprint(path: Path) -> str:
    """Size and modification time: cheap, and changes when the file does."""
    try:
        st = path.stat()
    except OSError as exc:
        raise GgufError(f"{path}: {exc.strerror}") from exc
    return f"{st.st_size}:{st.st_mtime_ns}"


@dataclass(frozen=True)
class Sizing:
    """What a model needs on a kind of device, and where the figure came from."""

    bytes: int
    source: str  # "configured", "measured" or "estimated"
    estimate: Estimate
    measured: int | None
    key: SizeKey


class Catalog:
    def __init__(self, specs: list[ModelSpec], store: SizeStore) -> None:
        self._specs = {s.name: s for s in specs}
        self._adapters = {  # adapter name → its base model (vllm)
            adapter: s.name for s in specs if s.backend == "vllm" for adapter in s.adapter_names()
        }
        self._store = store
        self._facts: dict[str, tuple[str, GgufFacts]] = {}

    def specs(self) -> list[ModelSpec]:
        return list(self._specs.values())

    def resolve(self, name: str) -> tuple[str, str]:
        """(model, name to send its backend) for a model or a vLLM adapter name."""
        if name in self._specs:
            return name, name
        base = self._adapters.get(name)
        if base is None:
            self.spec(name)  # raises ModelNotFound with the known names
        assert base is not None
        return base, name

    def spec(self, name: str) -> ModelSpec:
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self._specs)[:20]) or "none"
            raise ModelNotFound(
                f"model {name!r} is not in the catalog (known: {known})", model=name
            )
        return spec

    def facts(self, spec: ModelSpec) -> tuple[str, GgufFacts]:
        """The file's fingerprint and facts; raises GgufError. Blocking."""
        assert spec.path is not None
        fp = fingerprint(spec.path)
        cached = self._facts.get(spec.name)
        if cached is not None and cached[0] == fp:
            return cached
        facts = read_gguf_facts(spec.path)
        self._facts[spec.name] = (fp, facts)
        return fp, facts

    def cached(self, spec: ModelSpec) -> tuple[str, GgufFacts] | None:
        """The facts read last time, if any; no file access."""
        return self._facts.get(spec.name)

    async def facts_async(self, spec: ModelSpec) -> tuple[str, GgufFacts]:
        return await asyncio.to_thread(self.facts, spec)

    def sizing(self, spec: ModelSpec, fp: str, facts: GgufFacts, device_kind: str) -> Sizing:
        guess = estimate(facts, spec.ctx, spec.parallel, device_kind)
        return self._plan(spec, fp, guess, device_kind)

    def sizing_by_file_size(
        self, spec: ModelSpec, fp: str, file_bytes: int, device_kind: str
    ) -> Sizing:
        """For a model moc knows only by its file's size (an Ollama model)."""
        return self._plan(spec, fp, estimate_from_file(file_bytes, device_kind), device_kind)

    def sizing_preallocated(self, spec: ModelSpec, device_total: int, device_kind: str) -> Sizing:
        """For a runtime that takes a fixed fraction of the device at start (vLLM)."""
        assert spec.gpu_memory_util is not None
        taken = int(device_total * spec.gpu_memory_util)
        guess = Estimate(
            weights=0,
            kv_cache=taken,
            compute=0,
            runtime=RUNTIME_BYTES.get(device_kind, RUNTIME_BYTES["host"]),
        )
        return self._plan(spec, f"vllm:{spec.path}", guess, device_kind)

    def _plan(self, spec: ModelSpec, fp: str, guess: Estimate, device_kind: str) -> Sizing:
        """Configured, else measured before, else the estimate."""
        key = SizeKey(spec.name, fp, spec.ctx, spec.parallel, device_kind)
        measured = self._store.measured(key)
        if spec.memory is not None:
            return Sizing(spec.memory, "configured", guess, measured, key)
        if measured is not None:
            return Sizing(measured, "measured", guess, measured, key)
        return Sizing(guess.total, "estimated", guess, measured, key)
