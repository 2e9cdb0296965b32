"""API keys and audit events as values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moc.auth.principal import Limits, Principal
from moc.auth.roles import Role


@dataclass(frozen=True)
class ApiKey:
    """One API key as moc keeps it: never the secret, only its SHA-256.

    ``old_hash`` is the secret before the last rotation, still accepted until
    ``old_until`` (a rotation with a grace period)."""

    id: str
    name: str
    role: Role
    models: tuple[str, ...] | None
    limits: Limits
    secret_hash: bytes
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    old_hash: bytes | None = None
    old_until: float | None = None

    def principal(self) -> Principal:
        return Principal(self.id, self.role, self.name, self.models, self.limits)

    def live(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def record(self) -> dict[str, Any]:
        """As a JSON document (how a cluster shares it): the hashes, never a secret."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.label,
            "models": None if self.models is None else list(self.models),
            "limits": self.limits.as_dict(),
            "secret_hash": self.secret_hash.hex(),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "old_hash": None if self.old_hash is None else self.old_hash.hex(),
            "old_until": self.old_until,
        }

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> ApiKey:
        role = Role.named(doc["role"])
        if role is None:
            raise ValueError(f"unknown role {doc['role']!r}")
        models, old = doc["models"], doc["old_hash"]
        return cls(
            str(doc["id"]), str(doc["name"]), role,
            None if models is None else tuple(str(m) for m in models),
            Limits(**doc["limits"]), bytes.fromhex(doc["secret_hash"]), float(doc["created_at"]),
            _number(doc["expires_at"]), _number(doc["revoked_at"]),
            None if old is None else bytes.fromhex(old), _number(doc["old_until"]),
        )  # fmt: skip


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: float
    key_id: str  # "" with auth off
    action: str  # e.g. "key.create", "model.load", "lease.revoke"
    object: str  # what it acted on: a key id, a model name, a lease id
    result: str  # "ok", or the error code
    status: int  # the HTTP status answered
    details: dict[str, Any]
