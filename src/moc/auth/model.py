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
