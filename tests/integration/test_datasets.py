"""Datasets against a real ``moc serve``: HTTP, the SDK and the ``moc dataset``
commands, with the files as they land in the data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import moc
from moc.errors import DatasetExists, DatasetInvalid, DatasetNotFound, InvalidRequest
from tests.conftest import MocProcess

LIMIT = 64 * 1024
CHAT = b"".join(
    json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
    ).encode()
    + b"\n"
    for i in range(5)
)
DOCS = b'{"text": "The sky is blue.", "source": "a.txt"}\n{"text": "Grass is green."}\n'
BAD = DOCS + b'{"text": 3}\nnot json\n{"text": "ok", "id": []}\n'


@pytest.fixture
def served(moc_factory: Any) -> MocProcess:
    config = {"runtimes": {"demo_models": False}, "learning": {"max_dataset_bytes": LIMIT}}
    proc: MocProcess = moc_factory(config).start()
    return proc


def content_files(proc: MocProcess) -> list[Path]:
    return sorted((proc.data_dir / "datasets" / "sha256").glob("*.jsonl"))


def cli(proc: MocProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moc", "dataset", *args, "--url", proc.url],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "80"},
    )


def test_upload_list_show_delete_over_http(served: MocProcess) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        created = http.post("/v1/datasets", params={"name": "chat"}, content=CHAT)
        assert created.status_code == 201, created.text
        ds = created.json()
        assert created.headers["location"] == "/v1/datasets/chat"
        assert set(ds) == {
            "id",
            "name",
            "format",
            "rows",
            "bytes",
            "tokens",
            "digest",
            "created_at",
        }
        assert (ds["name"], ds["format"], ds["rows"], ds["bytes"]) == ("chat", "chat", 5, len(CHAT))
        assert ds["tokens"] == 5 * ((3 + 4) + (2 + 4))  # ceil(10 / 4), ceil(8 / 4), 4 a message
        assert content_files(served) == [
            served.data_dir / "datasets" / "sha256" / f"{ds['digest'][7:]}.jsonl"
        ]
        assert content_files(served)[0].read_bytes() == CHAT

        assert http.get("/v1/datasets").json() == {"datasets": [ds]}
        assert http.get("/v1/datasets/chat").json() == ds
        assert http.get(f"/v1/datasets/{ds['id']}").json() == ds
        again = http.post("/v1/datasets", params={"name": "chat"}, content=CHAT)
        assert again.status_code == 200
        assert again.json() == ds

        taken = http.post("/v1/datasets", params={"name": "chat"}, content=DOCS)
        assert taken.status_code == 409
        assert taken.json()["error"]["code"] == "dataset_exists"

        removed = http.delete("/v1/datasets/chat")
        assert removed.status_code == 200
        assert removed.json() == {"removed": True, "dataset": ds}
        missing = http.get("/v1/datasets/chat")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "dataset_not_found"
        assert content_files(served) == []


def test_a_bad_file_stores_nothing_and_names_each_wrong_line(served: MocProcess) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        refused = http.post("/v1/datasets", params={"name": "bad"}, content=BAD)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "dataset_invalid"
        assert error["details"]["error_count"] == 3
        found = error["details"]["errors"]
        assert [(e["line"], e["field"], e["expected"]) for e in found] == [
            (3, "text", "a non-empty string"),
            (4, "$", "one JSON value"),
            (5, "id", "a string"),
        ]
        assert found[1]["got"].endswith("at column 1")  # the JSON parser's words before it
        assert error["message"].startswith("the dataset has 3 errors and was not stored: line 3")
        assert http.get("/v1/datasets").json() == {"datasets": []}
        assert content_files(served) == []
        assert list((served.data_dir / "datasets" / "tmp").glob("*")) == []

        for params, field in [
            ({}, "name"),
            ({"name": "a b"}, "name"),
            ({"name": "x", "format": "csv"}, "format"),
            ({"name": "x", "replace": "yes"}, "replace"),
        ]:
            wrong = http.post("/v1/datasets", params=params, content=DOCS)
            assert wrong.status_code == 400, wrong.text
            assert wrong.json()["error"]["param"] == field

        too_big = http.post("/v1/datasets", params={"name": "big"}, content=DOCS * 1000)
        assert too_big.status_code == 400
        assert too_big.json()["error"]["details"]["limit"] == LIMIT
        assert str(LIMIT) in too_big.json()["error"]["message"]
        assert content_files(served) == []


def test_the_same_content_is_stored_once_and_survives_a_restart(
    served: MocProcess, tmp_path: Path
) -> None:
    client = moc.Client(served.url)
    a = client.add_dataset("a", DOCS)
    path = tmp_path / "docs.jsonl"
    path.write_bytes(DOCS)
    b = client.add_dataset("b", path, format="documents")
    assert a["digest"] == b["digest"]
    assert a["id"] != b["id"]
    assert len(content_files(served)) == 1
    client.remove_dataset("a")
    assert len(content_files(served)) == 1  # b still has it
    client.close()

    assert served.stop() == 0, served.log()
    served.start()
    with moc.Client(served.url) as client:
        assert client.datasets() == [b]
        assert client.remove_dataset(b["id"]) == b
        assert content_files(served) == []


async def test_the_sdk_raises_moc_errors(served: MocProcess, tmp_path: Path) -> None:
    async with moc.AsyncClient(served.url) as client:
        with pytest.raises(DatasetInvalid) as caught:
            await client.add_dataset("bad", BAD)
        assert caught.value.details["errors"][0] == {
            "line": 3,
            "field": "text",
            "expected": "a non-empty string",
            "got": "number",
        }
        path = tmp_path / "chat.jsonl"
        path.write_bytes(CHAT)
        ds = await client.add_dataset("chat", path)
        assert ds["format"] == "chat"
        with pytest.raises(DatasetExists):
            await client.add_dataset("chat", DOCS)
        replaced = await client.add_dataset("chat", DOCS, replace=True)
        assert replaced["format"] == "documents"
        assert replaced["id"] != ds["id"]
        assert await client.dataset("chat") == replaced
        assert [d["name"] for d in await client.datasets()] == ["chat"]
        big = tmp_path / "big.jsonl"
        big.write_bytes(DOCS * 1000)
        with pytest.raises(InvalidRequest):  # over the limit: refused by its declared length
            await client.add_dataset("big", big)
        await client.remove_dataset("chat")
        with pytest.raises(DatasetNotFound):
            await client.dataset("chat")


def test_the_dataset_commands(served: MocProcess, tmp_path: Path) -> None:
    good = tmp_path / "chat.jsonl"
    good.write_bytes(CHAT)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(BAD)

    added = cli(served, "add", "chat", str(good))
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("chat: chat, 5 rows\n")
    shown = json.loads(cli(served, "show", "chat", "--json").stdout)
    assert shown["rows"] == 5

    table = cli(served, "list")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["DATASET", "FORMAT", "ROWS", "SIZE", "TOKENS", "CREATED"]
    assert row.split()[:5] == ["chat", "chat", "5", f"{len(CHAT)}", "B"]
    created = shown["created_at"]
    assert row.split()[5:] == [f"~{shown['tokens']}", created[:10], created[11:16]]
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    assert json.loads(cli(served, "list", "--json").stdout) == [shown]

    refused = cli(served, "add", "bad", str(bad), "--format", "documents")
    assert refused.returncode == 1
    assert "[dataset_invalid]" in refused.stderr
    assert "line 3: text: expected a non-empty string (got number)" in refused.stderr
    assert "line 5: id: expected a string (got array)" in refused.stderr

    removed = cli(served, "rm", "chat")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == f"dataset chat removed ({shown['id']})\n"
    gone = cli(served, "show", "chat")
    assert gone.returncode == 1
    assert "[dataset_not_found]" in gone.stderr
    assert cli(served, "list").stdout == "no datasets\n"
