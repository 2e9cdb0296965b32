"""Group commit against a real SQLite file: one commit for the writes of one
turn of the event loop, each write undone alone when it fails, the batch
failing whole when its commit does, and synchronous writes kept in order."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from asyncio import Future
from collections.abc import Iterator
from pathlib import Path

import pytest

from moc.errors import StoreUnavailable
from moc.store.group_commit import GroupCommit
from moc.store.sqlite import Database
from tests.store.sqlite_faults import deny_commit


@pytest.fixture
def table(tmp_path: Path) -> tuple[sqlite3.Connection, Path]:
    path = tmp_path / "moc.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    return conn, path


@contextlib.contextmanager
def _alone(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write in a transaction of its own, as ``Database.transaction`` makes it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def rows(path: Path) -> list[int]:
    """What another connection sees: only what was committed."""
    with sqlite3.connect(path) as other:
        return [r[0] for r in other.execute("SELECT id FROM t ORDER BY id")]


def write(group: GroupCommit, conn: sqlite3.Connection, i: int, undone: list[int]) -> Future[None]:
    with group.stage(lambda: undone.append(i)) as committed:
        conn.execute("INSERT INTO t VALUES (?)", (i,))
    return committed


async def test_a_write_alone_commits_at_once(table: tuple[sqlite3.Connection, Path]) -> None:
    conn, path = table
    commits: list[int] = []
    group = GroupCommit(conn, path, lambda: _alone(conn), commits.append)
    committed = write(group, conn, 1, [])
    assert committed.done()  # nothing to wait for: no turn of the loop is spent
    assert rows(path) == [1]
    assert commits == []  # counted by the transaction it had to itself, not as a batch


async def test_the_writes_of_one_turn_share_one_commit(
    table: tuple[sqlite3.Connection, Path],
) -> None:
    conn, path = table
    commits: list[int] = []
    undone: list[int] = []
    group = GroupCommit(conn, path, lambda: _alone(conn), commits.append)
    first = [write(group, conn, i, undone) for i in range(3)]
    assert first[0].done()  # alone so far: committed at once
    assert rows(path) == [0]  # the others are staged: nobody may be told yet
    assert not first[1].done()
    await asyncio.gather(*first)
    assert rows(path) == [0, 1, 2]
    assert commits == [2]
    # The loop is busy now: the next turn's writes all wait for one commit.
    second = [write(group, conn, i, undone) for i in range(3, 5)]
    assert not second[0].done()
    await asyncio.gather(*second)
    assert commits == [2, 2]
    assert undone == []


async def test_a_write_that_fails_is_undone_alone(table: tuple[sqlite3.Connection, Path]) -> None:
    conn, path = table
    group = GroupCommit(conn, path, lambda: _alone(conn), lambda writes: None)
    undone: list[int] = []
    committed = write(group, conn, 1, undone)

    def two_rows_one_taken() -> None:
        with group.stage(lambda: undone.append(2)):
            conn.execute("INSERT INTO t VALUES (2)")
            conn.execute("INSERT INTO t VALUES (1)")  # fails: 2 goes with it

    with pytest.raises(StoreUnavailable, match="UNIQUE"):
        two_rows_one_taken()
    third = write(group, conn, 3, undone)
    await asyncio.gather(committed, third)
    assert rows(path) == [1, 3]
    assert undone == []  # a write that failed at once was never staged


async def test_a_failed_commit_fails_the_whole_batch(
    table: tuple[sqlite3.Connection, Path],
) -> None:
    conn, path = table
    commits: list[int] = []
    undone: list[int] = []
    group = GroupCommit(conn, path, lambda: _alone(conn), commits.append)
    futures = [write(group, conn, i, undone) for i in range(3)]  # 0 alone, 1 and 2 staged
    futures[1].cancel()  # its writer went away: it is undone all the same
    deny_commit(conn)
    with pytest.raises(StoreUnavailable, match="cannot write the state database"):
        await futures[2]
    assert rows(path) == [0]
    assert commits == []
    assert undone == [2, 1]  # the last write first, so memory goes back as it was
    conn.set_authorizer(None)
    await write(group, conn, 5, undone)  # the next turn starts a new transaction
    assert rows(path) == [0, 5]


async def test_a_transaction_commits_the_open_batch_first(tmp_path: Path) -> None:
    db = Database(tmp_path / "moc.db")
    try:
        db.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER)")
        with db.group.stage(lambda: None):
            db.conn.execute("INSERT INTO t VALUES (0, 0)")  # alone: committed at once
        with db.group.stage(lambda: None) as batch:
            db.conn.execute("INSERT INTO t VALUES (1, 1)")
        with db.transaction() as conn:  # would nest in the batch's BEGIN otherwise
            conn.execute("INSERT INTO t VALUES (2, 2)")
        assert batch.done()
        assert batch.exception() is None
        assert rows(db.path) == [0, 1, 2]
    finally:
        db.close()


async def test_closing_commits_what_is_staged(tmp_path: Path) -> None:
    db = Database(tmp_path / "moc.db")
    db.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    for i in (6, 7):
        with db.group.stage(lambda: None) as batch:
            db.conn.execute("INSERT INTO t VALUES (?)", (i,))
    assert not batch.done()
    db.close()
    assert batch.done()
    assert rows(tmp_path / "moc.db") == [6, 7]
    await asyncio.sleep(0)  # the flush scheduled for the turn finds nothing left


async def test_a_write_decided_on_undone_writes_is_refused(tmp_path: Path) -> None:
    """A transaction commits the open batch first; when that fails, the
    transaction's own write was decided on memory that held the writes just
    undone, so it is refused too."""
    db = Database(tmp_path / "moc.db")
    try:
        db.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        undone: list[int] = []
        futures = [write(db.group, db.conn, i, undone) for i in range(2)]  # 1 is staged
        deny_commit(db.conn)
        with pytest.raises(StoreUnavailable, match="writes before this one"), db.transaction():
            pass
        assert undone == [1]
        assert isinstance(futures[1].exception(), StoreUnavailable)
        db.conn.set_authorizer(None)
        with db.transaction() as conn:
            conn.execute("INSERT INTO t VALUES (9)")
        assert rows(db.path) == [0, 9]
    finally:
        db.close()


async def test_a_transaction_sqlite_rolled_back_fails_the_batch_at_once(
    table: tuple[sqlite3.Connection, Path],
) -> None:
    """On a full disk or an I/O error SQLite may roll the whole transaction
    back; the writes staged before are then gone, and are undone at once."""
    conn, path = table
    group = GroupCommit(conn, path, lambda: _alone(conn), lambda writes: None)
    undone: list[int] = []
    futures = [write(group, conn, i, undone) for i in range(2)]  # 0 alone, 1 staged

    def lost_with_the_transaction() -> None:
        with group.stage(lambda: undone.append(2)):
            conn.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL
            raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(StoreUnavailable, match="full"):
        lost_with_the_transaction()
    assert undone == [1]
    with pytest.raises(StoreUnavailable):
        await futures[1]
    await write(group, conn, 3, undone)  # a new batch in the next turn
    assert rows(path) == [0, 3]
