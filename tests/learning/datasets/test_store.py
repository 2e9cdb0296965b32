"""Datasets on a real SQLite file and a real data dir: what is stored, what is
shared, what is removed, and what a killed moc leaves for the next start."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from moc.clock import SystemClock
from moc.errors import (
    DatasetExists,
    DatasetInUse,
    DatasetInvalid,
    DatasetNotFound,
    InvalidRequest,
)
from moc.learning.datasets import DatasetService, Format
from moc.learning.datasets.files import ContentFiles
from moc.learning.datasets.store import DatasetStore
from moc.store.sqlite import Database

DOCS = b"".join(json.dumps({"text": f"document {i}"}).encode() + b"\n" for i in range(10))
OTHER = b'{"prompt": "2+2=", "completion": "4"}\n'


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "moc.db")
    yield database
    database.close()


def service(db: Database, root: Path, max_bytes: int = 1 << 20) -> DatasetService:
    files = ContentFiles(root / "datasets")
    return DatasetService(DatasetStore(db, files.path), files, SystemClock(), max_bytes)


async def chunks(data: bytes, size: int = 3) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def content_files(root: Path) -> list[Path]:
    return sorted((root / "datasets" / "sha256").glob("*"))


def leftovers(root: Path) -> list[Path]:
    tmp = root / "datasets" / "tmp"
    return sorted(tmp.glob("*")) if tmp.exists() else []


async def test_an_upload_is_stored_with_its_counts_and_found_by_name_or_id(
    db: Database, tmp_path: Path
) -> None:
    datasets = service(db, tmp_path)
    added = await datasets.add("docs", chunks(DOCS))
    ds = added.dataset
    assert added.created
    assert (ds.name, ds.format, ds.rows, ds.bytes) == ("docs", Format.DOCUMENTS, 10, len(DOCS))
    assert ds.digest.startswith("sha256:")
    assert ds.path.read_bytes() == DOCS
    assert ds.path == tmp_path / "datasets" / "sha256" / f"{ds.sha256}.jsonl"
    assert ds.id.startswith("ds_")
    assert len(ds.id) == 27
    assert datasets.get("docs") == ds == datasets.get(ds.id)
    assert leftovers(tmp_path) == []
    row = sqlite3.connect(db.path).execute("SELECT name, rows, sha256 FROM datasets").fetchall()
    assert row == [("docs", 10, ds.sha256)]
    # A second moc on the same file reads the same dataset.
    other = Database(db.path)
    try:
        assert service(other, tmp_path).get("docs") == ds
    finally:
        other.close()


async def test_the_same_content_under_two_names_is_one_file_removed_with_the_last(
    db: Database, tmp_path: Path
) -> None:
    datasets = service(db, tmp_path)
    a = (await datasets.add("a", chunks(DOCS))).dataset
    b = (await datasets.add("b", chunks(DOCS, 5))).dataset
    assert a.id != b.id
    assert a.path == b.path
    assert content_files(tmp_path) == [a.path]
    assert datasets.names() == ("a", a.id, "b", b.id)
    datasets.remove("a")
    assert datasets.names() == ("b", b.id)  # what a cluster node publishes follows
    assert content_files(tmp_path) == [a.path]
    datasets.remove(b.id)
    assert content_files(tmp_path) == []
    assert datasets.list() == []
    assert datasets.names() == ()


async def test_a_bad_file_stores_nothing(db: Database, tmp_path: Path) -> None:
    datasets = service(db, tmp_path)
    with pytest.raises(DatasetInvalid) as caught:
        await datasets.add("bad", chunks(DOCS + b'{"text": 5}\n'))
    assert caught.value.details["errors"][0]["line"] == 11
    assert datasets.list() == []
    assert content_files(tmp_path) == []
    assert leftovers(tmp_path) == []


async def test_a_body_over_the_limit_is_refused_by_its_length_or_as_it_arrives(
    db: Database, tmp_path: Path
) -> None:
    datasets = service(db, tmp_path, max_bytes=len(DOCS) - 1)
    with pytest.raises(InvalidRequest) as caught:
        await datasets.add("big", chunks(DOCS), declared_bytes=len(DOCS))
    assert caught.value.details["limit"] == len(DOCS) - 1
    assert "learning.max_dataset_bytes" in caught.value.message
    with pytest.raises(InvalidRequest):
        await datasets.add("big", chunks(DOCS))
    assert datasets.list() == []
    assert content_files(tmp_path) == []
    assert leftovers(tmp_path) == []


async def test_a_name_is_taken_unless_replaced_and_the_same_content_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    datasets = service(db, tmp_path)
    first = (await datasets.add("d", chunks(DOCS))).dataset
    again = await datasets.add("d", chunks(DOCS))
    assert not again.created
    assert again.dataset == first
    with pytest.raises(DatasetExists):
        await datasets.add("d", chunks(OTHER))
    assert datasets.get("d") == first
    replaced = (await datasets.add("d", chunks(OTHER), replace=True)).dataset
    assert replaced.id != first.id
    assert replaced.format is Format.INSTRUCTION
    assert datasets.get("d") == replaced
    with pytest.raises(DatasetNotFound):
        datasets.get(first.id)
    assert content_files(tmp_path) == [replaced.path]  # the old content had no other name


async def test_a_dataset_in_use_is_neither_removed_nor_replaced(
    db: Database, tmp_path: Path
) -> None:
    datasets = service(db, tmp_path)
    ds = (await datasets.add("d", chunks(DOCS))).dataset
    datasets.in_use = lambda dataset_id: ["lj_1", "lj_2"] if dataset_id == ds.id else []
    with pytest.raises(DatasetInUse) as caught:
        datasets.remove("d")
    assert caught.value.details["jobs"] == ["lj_1", "lj_2"]
    assert "lj_1, lj_2" in caught.value.message
    with pytest.raises(DatasetInUse):
        await datasets.add("d", chunks(OTHER), replace=True)
    assert datasets.get("d") == ds
    assert ds.path.exists()
    datasets.in_use = lambda dataset_id: []
    assert datasets.remove("d") == ds
    with pytest.raises(DatasetNotFound) as missing:
        datasets.get("d")
    assert missing.value.code == "dataset_not_found"


async def test_what_a_killed_moc_left_is_swept_at_the_next_start(
    db: Database, tmp_path: Path
) -> None:
    datasets = service(db, tmp_path)
    kept = (await datasets.add("kept", chunks(DOCS))).dataset
    # An upload cut off mid-way, and a content file whose row was never written.
    (tmp_path / "datasets" / "tmp" / "x.part").write_bytes(b'{"text": "half')
    orphan = tmp_path / "datasets" / "sha256" / f"{'0' * 64}.jsonl"
    orphan.write_bytes(OTHER)
    assert service(db, tmp_path).recover() == (1, 1)
    assert content_files(tmp_path) == [kept.path]
    assert leftovers(tmp_path) == []
    assert service(db, tmp_path).recover() == (0, 0)


async def test_an_upload_cancelled_mid_way_leaves_nothing(db: Database, tmp_path: Path) -> None:
    datasets = service(db, tmp_path)

    async def cut_off() -> AsyncIterator[bytes]:
        yield DOCS[:20]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await datasets.add("d", cut_off())
    assert datasets.list() == []
    assert leftovers(tmp_path) == []
    assert content_files(tmp_path) == []
