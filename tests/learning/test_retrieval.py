"""A real retrieval figure: the packaged MiniLM indexes the retrieval set through the
index job's child, and the daemon's side (QueryEmbedder + IndexFile) answers its questions."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from moc.errors import Unavailable
from moc.learning.query_embedder import QueryEmbedder
from moc.learning.retrieval_eval import evaluate, write_documents
from moc.learning.retrieval_set import PASSAGES
from moc.learning.vectors import IndexFile
from moc.learning.worker.protocol import EXIT_DONE, EXIT_FAILED, EXIT_YIELDED
from tests.learning.worker.support import Finished, job_for, run_worker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Finished:
    tmp = tmp_path_factory.mktemp("index")
    dataset = write_documents(tmp / "docs.jsonl")
    job = job_for(
        "index",
        tmp,
        {"name": "retrieval-set", "chunk_size": 400, "chunk_overlap": 50, "batch_size": 16},
        dataset=str(dataset),
        dataset_format="documents",
        extra={"model_cache": str(model_cache)},
    )
    done = run_worker("index", job, tmp / "job", timeout=300)
    assert done.code == EXIT_DONE, done.log
    return done


@pytest.fixture
async def embedder(indexed: Finished, tmp_path: Path) -> AsyncIterator[QueryEmbedder]:
    model = indexed.last["output"]["embedder"]["model"]
    query = QueryEmbedder(sys.executable, model, log=tmp_path / "embed.log")
    yield query
    await query.close()


def test_the_index_job_reports_its_output(indexed: Finished) -> None:
    output = indexed.last["output"]
    n = len(PASSAGES)
    assert (output["chunks"], output["documents"], output["dim"]) == (n, n, 384)
    assert output["embedder"]["kind"] == "sentence-transformers"
    assert output["embedder"]["name"] == "all-MiniLM-L6-v2"
    assert output["docs_per_s"] > 0
    assert [p["step"] for p in indexed.of("progress")] == [16, 32, 40]
    assert indexed.events[0] == {"event": "started", "step": 0, "total": n, "resumed": False}
    index = IndexFile.open(Path(output["path"]))
    assert index.meta["chunk_size"] == 400
    assert index.meta["embedder"] == output["embedder"]
    print(f"index: {output['documents']} documents at {output['docs_per_s']} documents/s")


async def test_recall_with_the_real_minilm(indexed: Finished, embedder: QueryEmbedder) -> None:
    index = IndexFile.open(Path(indexed.last["output"]["path"]))
    figures = await evaluate(index, embedder)
    print(
        f"retrieval: recall@1 {figures.recall_at_1:.3f}, recall@5 {figures.recall_at_5:.3f} "
        f"over {figures.questions} questions; missed at 1: {figures.misses_at_1}"
    )
    assert figures.questions == len(PASSAGES)
    assert figures.recall_at_1 >= 0.8
    assert figures.recall_at_5 >= 0.9


async def test_the_query_embedder_is_reused_and_restarted(embedder: QueryEmbedder) -> None:
    one, two = await asyncio.gather(embedder.embed(["first"]), embedder.embed(["a", "b"]))
    assert (len(one), len(two), len(one[0])) == (1, 2, 384)
    assert sum(x * x for x in one[0]) == pytest.approx(1.0, rel=1e-4)
    proc = embedder._proc
    assert proc is not None
    assert (await embedder.embed(["first"]))[0] == pytest.approx(one[0], abs=1e-5)
    assert embedder._proc is proc  # the same child answered
    proc.kill()
    await proc.wait()
    again = await embedder.embed(["first"])  # a new child
    assert again[0] == pytest.approx(one[0], abs=1e-5)
    await embedder.close()
    assert proc.returncode is not None


async def test_a_missing_model_folder_is_unavailable(tmp_path: Path) -> None:
    query = QueryEmbedder(sys.executable, tmp_path / "nothing", log=tmp_path / "embed.log")
    with pytest.raises(Unavailable, match="exited with 1"):
        await query.embed(["x"])
    assert "did not load" in (tmp_path / "embed.log").read_text()
    await query.close()


def test_a_yield_discards_the_partial_index(tmp_path: Path, model_cache: Path) -> None:
    dataset = write_documents(tmp_path / "docs.jsonl")
    job = job_for(
        "index",
        tmp_path,
        {"name": "y", "batch_size": 8},
        dataset=str(dataset),
        extra={"model_cache": str(model_cache)},
    )
    done = run_worker("index", job, tmp_path / "job", signal_at_progress=("SIGUSR1", 2))
    assert done.code == EXIT_YIELDED, done.log
    assert done.last == {"event": "yielded", "step": 0}
    assert [p["step"] for p in done.of("progress")] == [8, 16]
    assert os.listdir(tmp_path / "output") == []


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (['{"text": "fine"}', '{"txt": "no text"}'], "dataset line 2: text: must be a string"),
        (['{"text": "fine"}', "not json"], "dataset line 2: not JSON"),
        (['{"text": "x", "id": [1]}'], "dataset line 1: id: must be a string or an integer"),
        (['{"text": "   "}'], "dataset: has no text to index"),
    ],
)
def test_bad_documents_fail_naming_the_line(tmp_path: Path, lines: list[str], reason: str) -> None:
    dataset = tmp_path / "docs.jsonl"
    dataset.write_text("\n".join(lines) + "\n")
    job = job_for("index", tmp_path, {"name": "bad"}, dataset=str(dataset))
    done = run_worker("index", job, tmp_path / "job")
    assert done.code == EXIT_FAILED
    assert done.last["reason"].startswith(reason), done.last
    assert not (tmp_path / "job" / "models").exists()  # failed before any model was loaded


def test_an_index_job_without_moc_url_for_a_moc_embedder_fails(tmp_path: Path) -> None:
    dataset = write_documents(tmp_path / "docs.jsonl")
    params: dict[str, Any] = {"name": "m", "embedder": {"kind": "moc", "model": "emb"}}
    done = run_worker("index", job_for("index", tmp_path, params, dataset=str(dataset)), tmp_path)
    assert done.code == EXIT_FAILED
    assert done.last["reason"].startswith("moc_url: required"), json.dumps(done.last)
