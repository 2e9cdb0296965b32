"""Goals in a real SQLite file: written, read back by a new connection (as
after a restart), and a write the disk refuses changes nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from moc.errors import GoalExists, StoreUnavailable
from moc.learning.goals.model import Goal, GoalStatus
from moc.learning.goals.store import GoalStore
from moc.store.sqlite import MIGRATIONS, Database
from tests.store.sqlite_faults import deny_commit

A = Goal("research", 3.0, "read papers", GoalStatus.ACTIVE, 100.0, 100.0)
B = Goal("chores", 0.25, "", GoalStatus.PAUSED, 200.0, 250.0)


def test_goals_survive_a_reopen_oldest_first(tmp_path: Path) -> None:
    db = Database(tmp_path / "moc.db")
    store = GoalStore(db)
    store.insert(B)
    store.insert(A)
    changed = dataclasses.replace(A, weight=7.5, status=GoalStatus.DONE, updated_at=300.0)
    store.update(changed)
    db.close()

    again = Database(tmp_path / "moc.db")
    try:
        assert GoalStore(again).load() == [changed, B]
        GoalStore(again).delete("chores")
        assert GoalStore(again).load() == [changed]
        (version,) = again.conn.execute("PRAGMA user_version").fetchone()
        assert version == len(MIGRATIONS)
    finally:
        again.close()


def test_a_second_row_of_a_name_is_goal_exists(tmp_path: Path) -> None:
    db = Database(tmp_path / "moc.db")
    try:
        GoalStore(db).insert(A)
        with pytest.raises(GoalExists, match="research"):
            GoalStore(db).insert(dataclasses.replace(A, weight=1.0))
        assert GoalStore(db).load() == [A]
    finally:
        db.close()


def test_a_refused_commit_is_store_unavailable_and_writes_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "moc.db")
    try:
        GoalStore(db).insert(A)
        deny_commit(db.conn)
        with pytest.raises(StoreUnavailable):
            GoalStore(db).insert(B)
        with pytest.raises(StoreUnavailable):
            GoalStore(db).update(dataclasses.replace(A, weight=9.0))
        with pytest.raises(StoreUnavailable):
            GoalStore(db).delete(A.name)
        db.conn.set_authorizer(None)
        assert GoalStore(db).load() == [A]
    finally:
        db.close()


def test_an_unreadable_table_is_store_unavailable(tmp_path: Path) -> None:
    db = Database(tmp_path / "moc.db")
    try:
        db.conn.execute("DROP TABLE goals")
        with pytest.raises(StoreUnavailable, match="cannot read goals"):
            GoalStore(db).load()
    finally:
        db.close()
