"""Goals in SQLite: one row a goal, keyed by its name.

Every write commits before it returns (:meth:`Database.transaction`), so
the service applies a change to its table only once it is stored.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from moc.errors import GoalExists, StoreUnavailable
from moc.learning.goals.model import Goal, GoalStatus
from moc.store.sqlite import Database

_COLUMNS = "name, weight, description, status, created_at, updated_at"


def _goal(row: tuple[Any, ...]) -> Goal:
    name, weight, description, status, created, updated = row
    return Goal(
        name=str(name),
        weight=float(weight),
        description=str(description),
        status=GoalStatus(str(status)),
        created_at=float(created),
        updated_at=float(updated),
    )


class GoalStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self) -> list[Goal]:
        """Every goal, oldest first."""
        try:
            rows = self._db.conn.execute(
                f"SELECT {_COLUMNS} FROM goals ORDER BY created_at, name"
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read goals from {self._db.path}: {exc}") from exc
        return [_goal(r) for r in rows]

    def insert(self, goal: Goal) -> None:
        try:
            with self._db.transaction() as conn:
                conn.execute(f"INSERT INTO goals ({_COLUMNS}) VALUES (?,?,?,?,?,?)", _values(goal))
        except StoreUnavailable as exc:
            # The service checks names first; a row of the name can only be
            # there if something else wrote the file meanwhile.
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise GoalExists(f"a goal named {goal.name!r} exists", name=goal.name) from exc
            raise

    def update(self, goal: Goal) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE goals SET weight = ?, description = ?, status = ?, updated_at = ? "
                "WHERE name = ?",
                (goal.weight, goal.description, goal.status.value, goal.updated_at, goal.name),
            )

    def delete(self, name: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM goals WHERE name = ?", (name,))


def _values(goal: Goal) -> tuple[Any, ...]:
    return (
        goal.name,
        goal.weight,
        goal.description,
        goal.status.value,
        goal.created_at,
        goal.updated_at,
    )
