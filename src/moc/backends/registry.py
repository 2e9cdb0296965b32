"""Every kind of runtime moc has, by the ``backend`` name a spec uses."""

from __future__ import annotations

from moc.backends.context import RuntimeContext
from moc.backends.llamacpp import LlamaCppRuntime
from moc.backends.ollama import OllamaRuntime
from moc.backends.remote import RemoteRuntime
from moc.backends.runtime import Runtime
from moc.backends.vllm import VllmRuntime
from moc.config import Config
from moc.models.catalog import Catalog
from moc.models.spec import ModelSpec


class Runtimes:
    """The runtimes of one daemon, sharing one context (and its HTTP client)."""

    def __init__(self, ctx: RuntimeContext, runtimes: list[Runtime]) -> None:
        self.ctx = ctx
        self._by_kind = {r.kind: r for r in runtimes}

    def of(self, spec: ModelSpec) -> Runtime:
        return self._by_kind[spec.backend]

    def kinds(self) -> list[Runtime]:
        return list(self._by_kind.values())

    async def close(self) -> None:
        await self.ctx.http.aclose()


def build_runtimes(config: Config, catalog: Catalog) -> Runtimes:
    """One of each kind; raises ConfigError for a runtime setting that cannot work."""
    ctx = RuntimeContext.of(config, catalog)
    kinds: list[Runtime] = [
        LlamaCppRuntime(ctx),
        VllmRuntime(ctx),
        OllamaRuntime(ctx),
        RemoteRuntime(ctx),
    ]
    return Runtimes(ctx, kinds)
