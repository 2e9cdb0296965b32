"""The indexes ``index`` jobs made, by name, and queries against them.

A query is embedded the way the index's chunks were: by the same
sentence-transformers model in a query embedder child (started on first use
and kept; the daemon never imports torch), or by the same model moc serves,
through moc's own ``/v1/embeddings`` (so it loads under the ledger like any
request). An index the registry holds (every index job registers its output)
is read from the registry's verified copy, checked as a model is before it
loads. Owned by the event loop; the children live until :meth:`close`.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx

from moc.artifacts.manifest import Kind as ArtifactKind
from moc.artifacts.registry import Registry
from moc.errors import IndexNotFound, InvalidRequest, NotFound, Unavailable
from moc.learning.jobs.model import INDEX_NAME_PATTERN
from moc.learning.query_embedder import QueryEmbedder
from moc.learning.vectors import Hit, IndexFile, check_k
from moc.learning.worker.selfcall import SelfCallRefused, SelfTls, bearer, verify

INDEX_FILE = "index.sqlite"
MAX_QUERY = 8192  # as the HTTP body (IndexQueryBody) allows


class Indexes:
    def __init__(self, root: Path, python: str, registry: Registry | None = None) -> None:
        self._root = root
        self._python = python
        self._registry = registry
        self._embedders: dict[str, QueryEmbedder] = {}
        self.moc_url = ""  # set once moc's HTTP socket is bound
        self.moc_tls: SelfTls | None = None  # how to trust it, when moc serves TLS
        self.moc_api_key: str | None = None  # what to show it, when auth is on

    def names(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if (p / INDEX_FILE).is_file())

    async def _verified(self, name: str) -> Path:
        """The index's file: the registry's verified copy of its latest
        version where it has one (ArtifactTampered, … otherwise), else the
        file an index job published before moc had a registry."""
        versions = self._registry.versions(name) if self._registry is not None else []
        indexes = [a for a in versions if a.manifest.kind is ArtifactKind.INDEX]
        if self._registry is None or not indexes:
            return self._root / name / INDEX_FILE
        return await self._registry.verify(indexes[-1]) / INDEX_FILE

    def open(self, name: str, path: Path | None = None) -> IndexFile:
        try:
            if not re.fullmatch(INDEX_NAME_PATTERN, name):  # no index has such a name
                raise NotFound(name)
            return IndexFile.open(path or self._root / name / INDEX_FILE)
        except NotFound:
            known = ", ".join(self.names()) or "none yet"
            raise IndexNotFound(
                f"no index {name!r} (known: {known}); an index learning job makes one",
                index=name,
            ) from None

    async def query(self, name: str, text: str, k: int) -> list[Hit]:
        if not text:
            raise InvalidRequest("query", "must not be empty")
        if len(text) > MAX_QUERY:
            raise InvalidRequest(
                "query", f"at most {MAX_QUERY} characters", value=len(text), limit=MAX_QUERY
            )
        check_k(k)  # before any embedding is paid for
        if not re.fullmatch(INDEX_NAME_PATTERN, name):
            self.open(name)  # index_not_found, naming the known ones
        index = self.open(name, await self._verified(name))
        embedder = index.meta.get("embedder") or {}
        if embedder.get("kind") == "moc":
            vectors = await self._via_moc(str(embedder["model"]), [text])
        else:
            vectors = await self._query_embedder(str(embedder["model"])).embed([text])
        return await asyncio.to_thread(index.search, vectors[0], k)

    async def _via_moc(self, model: str, texts: list[str]) -> list[list[float]]:
        """Embedded by a model moc serves, through its own gateway."""
        try:
            # The pin is read from the file for each query: a reload changes it.
            trust = verify(self.moc_tls)
        except SelfCallRefused as exc:
            raise Unavailable(f"cannot embed the query with {model}: {exc}") from None
        except OSError as exc:
            raise Unavailable(
                f"cannot embed the query with {model}: moc's own certificate: {exc}"
            ) from exc
        try:
            headers = {} if self.moc_api_key is None else bearer(self.moc_api_key)
            async with httpx.AsyncClient(
                base_url=self.moc_url, timeout=300, verify=trust, headers=headers
            ) as client:
                answer = await client.post("/v1/embeddings", json={"model": model, "input": texts})
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot embed the query with {model}: {exc}") from exc
        if answer.status_code != 200:
            raise Unavailable(f"embedding the query with {model}: {answer.text[:300]}")
        return [item["embedding"] for item in answer.json()["data"]]

    def _query_embedder(self, folder: str) -> QueryEmbedder:
        found = self._embedders.get(folder)
        if found is None:
            found = self._embedders[folder] = QueryEmbedder(self._python, Path(folder))
        return found

    def publish(self, name: str, built: Path) -> Path:
        """Put the folder an index job built in place as index ``name`` (the
        index of that name before it goes); the path of its file."""
        self._root.mkdir(parents=True, exist_ok=True)
        target = self._root / name
        old = self._root / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.replace(old)
        built.replace(target)
        shutil.rmtree(old, ignore_errors=True)
        return target / INDEX_FILE

    async def close(self) -> None:
        for embedder in self._embedders.values():
            await embedder.close()
        self._embedders.clear()
