"""Faults of a real SQLite connection, made on purpose."""

from __future__ import annotations

import sqlite3


def deny_commit(conn: sqlite3.Connection) -> None:
    """Make every COMMIT fail, as a full disk does, before any row is written
    (an authorizer refusing the statement; ``set_authorizer(None)`` undoes it)."""

    def authorize(action: int, arg1: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    conn.set_authorizer(authorize)
