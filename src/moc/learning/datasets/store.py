"""Datasets in SQLite: one row per name, pointing at its content by SHA-256.

Several rows may share a content file; :meth:`DatasetStore.references` says
whether any still does before the file is removed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moc.errors import StoreUnavailable
from moc.learning.datasets.model import Dataset, Format
from moc.store.sqlite import Database

_COLUMNS = "id, name, format, sha256, rows, bytes, tokens, created_at"


class DatasetStore:
    """The ``datasets`` table. ``path_of`` turns a SHA-256 into the content
    file's path, which the rows do not store (the data dir may move)."""

    def __init__(self, db: Database, path_of: Callable[[str], Path]) -> None:
        self._db = db
        self._path_of = path_of

    def _dataset(self, row: tuple[Any, ...]) -> Dataset:
        id_, name, fmt, sha256, rows, nbytes, tokens, created = row
        return Dataset(
            id=str(id_),
            name=str(name),
            format=Format(fmt),
            path=self._path_of(str(sha256)),
            rows=int(rows),
            bytes=int(nbytes),
            tokens=int(tokens),
            digest=f"sha256:{sha256}",
            created_at=float(created),
        )

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self._db.path}: {exc}") from exc

    @staticmethod
    def _values(ds: Dataset) -> tuple[Any, ...]:
        return (
            ds.id,
            ds.name,
            ds.format.value,
            ds.sha256,
            ds.rows,
            ds.bytes,
            ds.tokens,
            ds.created_at,
        )

    def insert(self, ds: Dataset, replacing: str | None = None) -> None:
        """Write ``ds``; with ``replacing``, that row (by id) is deleted in the
        same transaction, so its name never points at nothing."""
        with self._db.transaction() as conn:
            if replacing is not None:
                conn.execute("DELETE FROM datasets WHERE id = ?", (replacing,))
            conn.execute(
                f"INSERT INTO datasets ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", self._values(ds)
            )

    def delete(self, dataset_id: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))

    def by_name(self, name: str) -> Dataset | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM datasets WHERE name = ?", (name,))
        return self._dataset(rows[0]) if rows else None

    def by_id(self, dataset_id: str) -> Dataset | None:
        rows = self._read(f"SELECT {_COLUMNS} FROM datasets WHERE id = ?", (dataset_id,))
        return self._dataset(rows[0]) if rows else None

    def all(self) -> list[Dataset]:
        """Every dataset, by name."""
        return [
            self._dataset(r) for r in self._read(f"SELECT {_COLUMNS} FROM datasets ORDER BY name")
        ]

    def references(self, sha256: str) -> int:
        """How many datasets have this content."""
        rows = self._read("SELECT COUNT(*) FROM datasets WHERE sha256 = ?", (sha256,))
        return int(rows[0][0])

    def contents(self) -> set[str]:
        """The SHA-256 of every dataset's content."""
        return {str(r[0]) for r in self._read("SELECT DISTINCT sha256 FROM datasets")}
