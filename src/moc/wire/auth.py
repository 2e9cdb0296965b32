"""API keys, the caller, and audit events as ``/v1/keys``, ``/v1/whoami`` and
``/v1/audit`` answer them."""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed

# moc.auth.roles.Role, as sent.
RoleName = Literal["admin", "operator", "user", "viewer"]


@closed
class KeyLimits(TypedDict, total=False):
    """A key's limits; a limit left out is no limit."""

    requests_per_minute: int
    """requests admitted a minute (a bucket of a minute's worth, refilled steadily)"""
    tokens_per_minute: int
    """tokens a minute, estimated before the answer and settled from its usage"""
    concurrent_requests: int
    """requests in flight at once"""
    device_byte_seconds_per_day: int
    """bytes held on devices by its leases and learning jobs × seconds, per UTC day"""


@closed
class ApiKey(TypedDict):
    """An API key, without its secret."""

    id: str
    """the key's id: the part of the key after ``moc_`` and before the secret"""
    name: str
    """what it is for, as given"""
    role: RoleName
    """admin, operator, user or viewer"""
    models: list[str] | None
    """globs of the models it may use; null: every model"""
    limits: KeyLimits
    """its limits"""
    created_at: str
    """UTC, ISO 8601 with milliseconds"""
    expires_at: str | None
    """refused from then on; null: never"""
    revoked_at: str | None
    """when it was revoked; null: live"""
    last_used_at: str | None
    """when this daemon last accepted it; null: not since it started"""
    state: Literal["live", "expired", "revoked"]
    """whether it is accepted now"""


@closed
class ApiKeyCreated(ApiKey):
    """A key just made or rotated, with its secret: shown this once."""

    key: str
    """the secret to send as ``Authorization: Bearer <key>``; moc keeps only its hash"""
    previous_valid_until: str | None
    """rotated with a grace period: the old secret works until then; else null"""


@closed
class ApiKeyList(TypedDict):
    """Every key, oldest first, without secrets."""

    keys: list[ApiKey]


@closed
class ApiKeyRevoked(TypedDict):
    """``DELETE /v1/keys/{id}``: the key is refused from now on."""

    revoked: bool
    """always true (revoking a revoked key changes nothing)"""
    key: ApiKey


@closed
class Caller(TypedDict):
    """Who the credentials of this request name."""

    id: str
    """a key id, ``jwt:<subject>``, ``env-admin`` for MOC_ADMIN_KEY, or "" with auth off"""
    name: str
    """the key's name or the token's subject"""
    role: RoleName
    """what it may do"""
    models: list[str] | None
    """globs of the models it may use; null: every model"""
    limits: KeyLimits
    """its limits"""
    auth: bool
    """whether authentication is on"""
    device_byte_seconds_today: int
    """bytes × seconds its leases and learning jobs have held on devices today (UTC)"""


@closed
class AuditEvent(TypedDict):
    """One admin or operator action."""

    seq: int
    """its number, increasing"""
    at: str
    """UTC, ISO 8601 with milliseconds"""
    key_id: str
    """who did it: a key id, ``jwt:<subject>``, ``env-admin``; "" with auth off"""
    action: str
    """what was done: key.create, model.load, lease.revoke, goal.update, …"""
    object: str
    """what it was done to: a key id, a model or goal name, a lease or job id"""
    result: str
    """ok, or the HTTP status it was refused with"""
    status: int
    """the HTTP status answered"""
    details: dict[str, object]
    """more: the caller's role"""


@closed
class AuditList(TypedDict):
    """Audit events, newest first."""

    events: list[AuditEvent]
