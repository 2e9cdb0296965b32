"""Leases in SQLite: active rows, ended rows kept a while, fencing tokens.

Grants that revoke nothing and renews may be *staged*: written at once into the
tick's transaction (:mod:`moc.store.group_commit`), returning the batch future
that tells when they are committed. Everything else commits before it returns.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

from moc.errors import StoreUnavailable
from moc.leases.model import Ended, EndState, Lease
from moc.store.sqlite import Database

_COLUMNS = (
    "id, device, bytes, holder, pid, priority, preemptible, fencing_token, ttl_s, "
    "created_at, expires_at, yield_s, owner"
)


def _lease(row: tuple[Any, ...]) -> Lease:
    (id_, device, nbytes, holder, pid, priority, preemptible, token, ttl_s, created, expires) = row[
        :11
    ]
    yield_s, owner = row[11:13]
    return Lease(
        id=str(id_),
        device=str(device),
        bytes=int(nbytes),
        holder=str(holder),
        pid=None if pid is None else int(pid),
        priority=int(priority),
        preemptible=bool(preemptible),
        fencing_token=int(token),
        ttl_s=float(ttl_s),
        created_at=float(created),
        expires_at=float(expires),
        yield_s=None if yield_s is None else float(yield_s),
        owner=str(owner),
    )


class LeaseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self) -> tuple[list[Lease], list[Ended], dict[str, int]]:
        try:
            conn = self._db.conn
            active = [
                _lease(r)
                for r in conn.execute(f"SELECT {_COLUMNS} FROM leases WHERE state = 'active'")
            ]
            ended = [
                Ended(str(i), EndState(str(s)), float(at))
                for i, s, at in conn.execute(
                    "SELECT id, state, ended_at FROM leases WHERE state != 'active'"
                )
            ]
            tokens = {str(d): int(t) for d, t in conn.execute("SELECT device, last FROM fencing")}
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read leases from {self._db.path}: {exc}") from exc
        return active, ended, tokens

    def save_grant(self, lease: Lease, revoked: tuple[Lease, ...], now: float) -> None:
        with self._db.transaction() as conn:
            for victim in revoked:
                conn.execute(
                    "UPDATE leases SET state = 'revoked', ended_at = ? WHERE id = ?",
                    (now, victim.id),
                )
            _insert(conn, lease)

    def stage_grant(self, lease: Lease, undo: Callable[[], None]) -> asyncio.Future[None]:
        """A grant that revokes nothing, staged; the future: its commit."""
        with self._db.group.stage(undo) as committed:
            _insert(self._db.conn, lease)
        return committed

    def stage_renew(self, lease: Lease, undo: Callable[[], None]) -> asyncio.Future[None]:
        with self._db.group.stage(undo) as committed:
            _update_deadline(self._db.conn, lease)
        return committed

    def save_end(self, lease_ids: list[str], state: EndState, now: float) -> None:
        with self._db.transaction() as conn:
            conn.executemany(
                "UPDATE leases SET state = ?, ended_at = ? WHERE id = ? AND state = 'active'",
                [(state.value, now, i) for i in lease_ids],
            )

    def save_pid(self, lease: Lease) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE leases SET pid = ? WHERE id = ?", (lease.pid, lease.id))

    def forget(self, lease_ids: list[str]) -> None:
        with self._db.transaction() as conn:
            conn.executemany("DELETE FROM leases WHERE id = ?", [(i,) for i in lease_ids])


def _insert(conn: sqlite3.Connection, lease: Lease) -> None:
    conn.execute(
        f"INSERT INTO leases ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            lease.id,
            lease.device,
            lease.bytes,
            lease.holder,
            lease.pid,
            lease.priority,
            int(lease.preemptible),
            lease.fencing_token,
            lease.ttl_s,
            lease.created_at,
            lease.expires_at,
            lease.yield_s,
            lease.owner,
        ),
    )
    conn.execute(
        "INSERT INTO fencing (device, last) VALUES (?, ?) "
        "ON CONFLICT(device) DO UPDATE SET last = excluded.last",
        (lease.device, lease.fencing_token),
    )


def _update_deadline(conn: sqlite3.Connection, lease: Lease) -> None:
    conn.execute(
        "UPDATE leases SET ttl_s = ?, expires_at = ? WHERE id = ?",
        (lease.ttl_s, lease.expires_at, lease.id),
    )
