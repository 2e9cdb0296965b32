"""API keys, the audit log and device use per owner and day, in SQLite.

The key ring reads every key once at start and keeps them; this table is
written on each change. Audit events are appended and read by query.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from moc.auth.model import ApiKey, AuditEvent
from moc.auth.principal import Limits
from moc.auth.roles import Role
from moc.errors import StoreUnavailable
from moc.store.sqlite import Database

_KEY_COLUMNS = (
    "id, name, role, models, limits, secret_hash, old_hash, old_until, "
    "created_at, expires_at, revoked_at"
)


def _key(row: tuple[Any, ...]) -> ApiKey:
    (id_, name, role, models, limits, secret_hash, old_hash, old_until,
     created, expires, revoked) = row  # fmt: skip
    found = Role.named(role)
    return ApiKey(
        id=id_,
        name=name,
        role=Role.VIEWER if found is None else found,
        models=None if models is None else tuple(orjson.loads(models)),
        limits=Limits(**orjson.loads(limits)),
        secret_hash=bytes(secret_hash),
        old_hash=None if old_hash is None else bytes(old_hash),
        old_until=old_until,
        created_at=created,
        expires_at=expires,
        revoked_at=revoked,
    )


class AuthStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot read {self._db.path}: {exc}") from exc

    # --- keys ----------------------------------------------------------------------
    def all_keys(self) -> list[ApiKey]:
        return [_key(r) for r in self._rows(f"SELECT {_KEY_COLUMNS} FROM api_keys")]

    def put_key(self, key: ApiKey) -> None:
        """Insert or replace the key's row, committed before it returns."""
        with self._db.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO api_keys ({_KEY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    key.id,
                    key.name,
                    key.role.label,
                    None if key.models is None else orjson.dumps(list(key.models)),
                    orjson.dumps(key.limits.as_dict()),
                    key.secret_hash,
                    key.old_hash,
                    key.old_until,
                    key.created_at,
                    key.expires_at,
                    key.revoked_at,
                ),
            )

    # --- audit ---------------------------------------------------------------------
    def append_audit(
        self,
        at: float,
        key_id: str,
        action: str,
        obj: str,
        result: str,
        status: int,
        details: dict[str, Any],
    ) -> int:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO audit (at, key_id, action, object, result, status, details) "
                "VALUES (?,?,?,?,?,?,?)",
                (at, key_id, action, obj, result, status, orjson.dumps(details, default=str)),
            )
            return int(cursor.lastrowid or 0)

    def audit(
        self,
        *,
        since: float | None,
        until: float | None,
        key_id: str | None,
        action: str | None,
        limit: int,
    ) -> list[AuditEvent]:
        """Newest first."""
        where: list[str] = []
        args: list[Any] = []
        for clause, value in (
            ("at >= ?", since),
            ("at < ?", until),
            ("key_id = ?", key_id),
            ("action = ?", action),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        text = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(
            "SELECT seq, at, key_id, action, object, result, status, details FROM audit "
            f"{text} ORDER BY seq DESC LIMIT ?",
            (*args, limit),
        )
        return [
            AuditEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], orjson.loads(r[7] or b"{}"))
            for r in rows
        ]

    def prune_audit(self, before: float) -> int:
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM audit WHERE at < ?", (before,)).rowcount

    # --- device use ----------------------------------------------------------------
    def device_use(self, day: str) -> dict[str, float]:
        rows = self._rows("SELECT owner, byte_seconds FROM device_use WHERE day = ?", (day,))
        return {str(owner): float(used) for owner, used in rows}

    def add_device_use(self, owner: str, day: str, byte_seconds: float) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO device_use (owner, day, byte_seconds) VALUES (?,?,?) "
                "ON CONFLICT(owner, day) DO UPDATE SET "
                "byte_seconds = byte_seconds + excluded.byte_seconds",
                (owner, day, byte_seconds),
            )
            conn.execute("DELETE FROM device_use WHERE day < date(?, '-7 days')", (day,))
