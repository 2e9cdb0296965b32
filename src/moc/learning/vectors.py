"""A vector index: one SQLite file of chunks and their embeddings, searched by cosine.

The file (written by the ``index`` job's child through :class:`IndexBuilder`,
read by the daemon through :class:`IndexFile`; standard library and numpy
only) holds three tables:

- ``meta(key, value)``: JSON values: ``format`` (1), ``name``, ``embedder``
  (``{"kind", "model", …}``), ``dim``, ``normalized`` (true), ``chunk_size``,
  ``chunk_overlap``, ``chunks``, ``documents``;
- ``chunks(id, doc_id, source, text, position, start)``;
- ``vectors(chunk_id, vector)``: little-endian float32 blobs of ``dim``
  values, L2-normalized, so a dot product is the cosine.

Search is brute force in numpy: every vector is in one matrix, loaded at the
first search and again only when the file's mtime or size changes. The
builder writes a temporary file and renames it into place, so a reader sees
the old index or the new one, whole.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from moc.errors import InvalidRequest, NotFound

FORMAT = 1
MAX_K = 100
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    source TEXT,
    text TEXT NOT NULL,
    position INTEGER NOT NULL,
    start INTEGER NOT NULL
);
CREATE TABLE vectors (chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id), vector BLOB NOT NULL);
"""

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ChunkRow:
    doc_id: str
    source: str | None
    text: str
    position: int
    start: int


@dataclass(frozen=True)
class Hit:
    text: str
    score: float  # cosine similarity, -1..1
    source: str | None
    doc_id: str


def normalize(vectors: Matrix) -> Matrix:
    """Rows scaled to length 1; a zero row stays zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


class IndexBuilder:
    """Writes an index file; owns the temporary file until :meth:`finish` renames it."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        self._tmp.unlink(missing_ok=True)
        self._db = sqlite3.connect(self._tmp)
        self._db.executescript(SCHEMA)
        self._count = 0

    def add(self, rows: Sequence[ChunkRow], vectors: Matrix) -> None:
        if vectors.shape != (len(rows), self.dim):
            raise ValueError(f"{len(rows)} chunks need a {len(rows)}×{self.dim} matrix")
        unit = normalize(np.asarray(vectors, dtype=np.float32)).astype("<f4")
        ids = range(self._count + 1, self._count + len(rows) + 1)
        self._db.executemany(
            "INSERT INTO chunks (id, doc_id, source, text, position, start) VALUES (?,?,?,?,?,?)",
            [
                (i, r.doc_id, r.source, r.text, r.position, r.start)
                for i, r in zip(ids, rows, strict=True)
            ],
        )
        self._db.executemany(
            "INSERT INTO vectors (chunk_id, vector) VALUES (?, ?)",
            [(i, unit[n].tobytes()) for n, i in enumerate(ids)],
        )
        self._count += len(rows)

    def finish(self, meta: dict[str, Any]) -> Path:
        """Write ``meta`` (with ``dim``, ``normalized``, ``chunks``); rename the file into place."""
        full = {
            **meta,
            "format": FORMAT,
            "dim": self.dim,
            "normalized": True,
            "chunks": self._count,
        }
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in full.items()],
        )
        self._db.commit()
        self._db.close()
        self._tmp.replace(self.path)
        return self.path

    def abandon(self) -> None:
        self._db.close()
        self._tmp.unlink(missing_ok=True)


def check_k(k: object) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise InvalidRequest("k", f"must be an integer from 1 to {MAX_K}", value=k, limit=MAX_K)


class IndexFile:
    """One index file, opened for search.

    :meth:`open` hands out one instance per path (the class's ``_open``
    cache); each instance owns its loaded matrix and reloads it when the
    file's mtime or size changes. Searches are synchronous numpy work on the
    caller's thread, and instances are not shared across threads.
    """

    _open: ClassVar[dict[Path, IndexFile]] = {}

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta: dict[str, Any] = {}
        self._stamp: tuple[int, int] | None = None
        self._ids: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._matrix: Matrix = np.zeros((0, 0), dtype=np.float32)

    @classmethod
    def open(cls, path: Path) -> IndexFile:
        """The index at ``path``, loaded (or reloaded if the file changed); raises
        :class:`NotFound` if there is none."""
        key = path.resolve()
        index = cls._open.get(key)
        if index is None:
            index = cls._open[key] = cls(key)
        index._load_if_changed()
        return index

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def _load_if_changed(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._open.pop(self.path, None)
            raise NotFound(f"no index file at {self.path}") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
            rows = db.execute("SELECT chunk_id, vector FROM vectors ORDER BY chunk_id").fetchall()
        finally:
            db.close()
        dim = int(meta["dim"])
        self._ids = np.array([r[0] for r in rows], dtype=np.int64)
        blob = b"".join(r[1] for r in rows)
        self._matrix = np.frombuffer(blob, dtype="<f4").reshape(len(rows), dim).astype(np.float32)
        self.meta = meta
        self._stamp = stamp

    def search(self, query_vector: Sequence[float], k: int) -> list[Hit]:
        """The ``k`` chunks nearest ``query_vector`` by cosine, best first."""
        check_k(k)
        self._load_if_changed()
        query = np.asarray(query_vector, dtype=np.float32)
        if query.shape != (self.dim,):
            raise InvalidRequest(
                "query_vector",
                f"must have {self.dim} dimensions, as the index's embedder gives",
                value=f"{query.size} dimensions",
                limit=self.dim,
            )
        norm = float(np.linalg.norm(query))
        if not np.isfinite(norm) or norm == 0:
            raise InvalidRequest("query_vector", "must be finite and not all zero")
        scores = self._matrix @ (query / norm)
        k = min(k, len(scores))
        if k == 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        ids = [int(self._ids[i]) for i in top]
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            marks = ",".join("?" * len(ids))
            found = {
                row[0]: row[1:]
                for row in db.execute(
                    f"SELECT id, text, source, doc_id FROM chunks WHERE id IN ({marks})", ids
                )
            }
        finally:
            db.close()
        return [
            Hit(text=found[i][0], score=float(scores[n]), source=found[i][1], doc_id=found[i][2])
            for i, n in zip(ids, top, strict=True)
        ]
