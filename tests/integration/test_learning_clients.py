"""Learning jobs from the SDK and the CLI, against a real ``moc serve`` with its
demo catalog (tiny-base, demo-qa, demo-docs): what the README shows works as
written; a paused goal yields its job; a cancel while a job waits after a
yield gives nothing back twice; a held yieldable lease sees the request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import moc
from tests.integration.support import Factory, chat, spec, start, wait_for
from tests.integration.test_learning import LEARNING, LEARNS, finished, job, submit

pytestmark = [pytest.mark.usefixtures("no_stray_runtimes"), pytest.mark.slow]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moc", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "100"},
    )


def test_the_readme_commands_train_quantize_index_and_search(moc_factory: Factory) -> None:
    server = moc_factory({"learning": LEARNING}).start(timeout=60)  # the demo catalog
    url = server.url
    assert {d["name"] for d in moc_datasets(url)} == {"demo-qa", "demo-docs"}
    trained = cli(
        url, "train", "demo-qa", "--max-steps", "20", "--rank", "16", "--alpha", "32",
        "--lr", "5e-3", "--target-modules", "all-linear", "--seq-len", "64", "--follow",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert "complete" in trained.stderr  # one line per change of status when not a terminal
    quantized = cli(url, "quantize", "tiny-chat", "--type", "q8_0", "--follow", "--json")
    assert quantized.returncode == 0, quantized.stderr
    output = json.loads(quantized.stdout)["output"]
    assert output["agreement"] >= 0.95
    assert output["bytes"] < output["source_bytes"]
    indexed = cli(url, "index", "demo-docs", "--name", "demo", "--follow")
    assert indexed.returncode == 0, indexed.stderr
    found = cli(url, "search", "demo", "How do bees tell each other where flowers are?")
    assert found.returncode == 0, found.stderr
    assert "waggle dance" in found.stdout.splitlines()[1]
    # each output is a signed artifact, and a query reads the index verified
    assert output["artifact"].startswith("tiny-chat-q8_0@sha256:")
    (index_file,) = httpx.get(f"{url}/v1/artifacts/demo").json()["files"]
    blob = server.data_dir / "artifacts" / "blobs" / "sha256" / index_file["sha256"]
    blob.chmod(0o644)
    with blob.open("r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    refused = cli(url, "search", "demo", "How do bees tell each other where flowers are?")
    assert refused.returncode == 1
    assert "[artifact_tampered] index.sqlite: changed" in refused.stderr
    listed = cli(url, "learning", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[2] for line in listed.stdout.splitlines()[1:]] == ["complete"] * 3


def moc_datasets(url: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = httpx.get(f"{url}/v1/datasets").json()["datasets"]
    return data


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_sdk_follows_a_job_and_a_paused_goal_yields_it(moc_factory: Factory) -> None:
    server = moc_factory({"learning": LEARNING}).start(timeout=60)
    with moc.Client(server.url) as client:
        client.create_goal("research", 3)
        submitted = client.submit_learning(
            "sft", dataset="demo-qa", goal="research", params={**LEARNS, "max_steps": 100000}
        )
        seen = set()
        for item in client.learning_events(submitted["id"]):
            seen.add(item["event"])
            if item["event"] == "progress" and item["job"]["progress"]["step"] >= 3:
                break
        assert {"status", "started", "progress"} <= seen
        ps = cli(server.url, "ps")
        assert ps.returncode == 0, ps.stderr
        assert "learning:lj_" in ps.stdout  # its memory, beside the models (the holder, cut)
        client.update_goal("research", status="paused")
        wait_for(lambda: client.learning_job(submitted["id"])["status"] == "pending", 60)
        paused = client.learning_job(submitted["id"])
        assert paused["yields"] == 1
        assert paused["held_on"] is None
        client.update_goal("research", status="active")
        wait_for(lambda: client.learning_job(submitted["id"])["status"] == "running", 60)
        assert client.cancel_learning(submitted["id"])["id"] == submitted["id"]
        wait_for(lambda: client.learning_job(submitted["id"])["status"] == "cancelled", 30)
        assert client.learning_jobs(status="cancelled")[0]["id"] == submitted["id"]


def test_cancel_while_yielded_ends_the_job_and_holds_nothing(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    server = start(
        moc_factory, [spec(tiny_models, "a", memory="600MiB")], size="1GiB", learning=LEARNING
    )
    with httpx.Client(base_url=server.url, timeout=60) as http:
        http.post(
            "/v1/datasets", params={"name": "qa"}, content=b'{"prompt":"a","completion":"b"}\n'
        )
        job_id = submit(http, kind="sft", dataset="qa", params={**LEARNS, "max_steps": 100000})[
            "id"
        ]
        wait_for(lambda: job(http, job_id)["status"] == "running", 90)
        answer = http.post("/v1/chat/completions", json=chat("a"))
        assert answer.status_code == 200, answer.text
        wait_for(lambda: job(http, job_id)["status"] == "queued")  # waits for a's memory
        assert http.delete(f"/v1/learning/jobs/{job_id}").status_code == 200
        assert finished(http, job_id)["status"] == "cancelled"
        assert http.get("/v1/leases").json()["leases"] == []
        assert job(http, job_id)["yields"] == 1


def test_a_held_yieldable_lease_hears_a_load_ask_for_its_memory(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    server = start(moc_factory, [spec(tiny_models, "a", memory="600MiB")], size="1GiB")
    asked: list[str] = []
    with moc.Client(server.url) as client:
        with client.lease(mb=500, priority=20, yield_s=4, ttl_s=60, on_yield=asked.append) as held:
            loading = threading.Thread(target=client.load, args=("a",), daemon=True)
            loading.start()
            assert held.yield_requested.wait(10)
            assert held.yield_by is not None
            assert asked == [held.yield_by]
        loading.join(60)  # released on leaving the block: the load goes on
        assert client.model("a")["state"] == "ready"
    taken = cli(server.url, "lease", "acquire", "--size", "64MiB", "--yield", "5", "--json")
    assert taken.returncode == 0, taken.stderr
    assert json.loads(taken.stdout)["yield_s"] == 5


def test_an_index_embedded_by_a_model_moc_serves_answers_queries_through_it(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    embedder = spec(tiny_models, "b", args=["--embeddings", "--pooling", "mean"])
    server = start(moc_factory, [embedder], size="1GiB", learning=LEARNING)
    docs = b"".join(
        json.dumps(
            {"id": f"d{i}", "source": f"s{i}", "text": f"document number {i} " * 20}
        ).encode()
        + b"\n"
        for i in range(6)
    )
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.post("/v1/datasets", params={"name": "docs"}, content=docs).status_code == 201
        body = {"name": "via-moc", "chunk_size": 200, "embedder": {"kind": "moc", "model": "b"}}
        done = finished(http, submit(http, kind="index", dataset="docs", params=body)["id"])
        assert done["status"] == "complete", done["error"]
        assert done["output"]["embedder"]["kind"] == "moc"
        assert done["bytes"] < 300 * 1024 * 1024  # no torch in the child: an HTTP client
        http.post("/v1/models/b/unload")  # the query loads it again, under the ledger
        answer = http.post("/v1/indexes/via-moc/query", json={"query": "document number 3", "k": 3})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert len(results) == 3
        assert all(r["source"].startswith("s") for r in results)
        assert http.get("/v1/models/b").json()["state"] == "ready"
        assert http.get("/v1/indexes").json() == {"indexes": ["via-moc"]}
        missing = http.post("/v1/indexes/nope/query", json={"query": "x"})
        assert missing.json()["error"]["code"] == "index_not_found"
        bad_k = http.post("/v1/indexes/via-moc/query", json={"query": "x", "k": 0})
        assert bad_k.status_code == 400
        assert bad_k.json()["error"]["param"] == "k"
