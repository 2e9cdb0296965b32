"""A lease as ``/v1/leases`` answers it."""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed


@closed
class Lease(TypedDict):
    """A grant of device memory to a holder, until it is released or expires."""

    id: str
    """the lease's id, for renew and release"""
    device: str
    """the device the bytes are held on"""
    bytes: int
    """bytes held"""
    holder: str
    """who holds it, as the acquire named it"""
    pid: int | None
    """the process using the memory, which moc measures; null: not named"""
    priority: int
    """0 … 100; a higher priority may revoke a preemptible lease"""
    preemptible: bool
    """whether a higher priority may revoke it"""
    fencing_token: int
    """grows with every grant; renew and release may send it to prove they hold this grant"""
    ttl_s: float
    """seconds each renewal extends it by"""
    created_at: str
    """when it was granted (UTC, ISO 8601 with milliseconds)"""
    expires_at: str
    """when it expires unless renewed (UTC, ISO 8601 with milliseconds)"""
    expires_in_s: float
    """seconds left until expires_at"""
    used_bytes: int | None
    """what its process was last measured using; null: no pid, or not measured yet"""
    over_limit: bool
    """the process uses more than the lease holds"""
    yield_s: float | None
    """yieldable: seconds its holder is given to let go when asked; null: not yieldable"""
    yield_by: str | None
    """asked to yield: release it by then (UTC, ISO 8601) or it is revoked; null: not asked"""


@closed
class LeaseList(TypedDict):
    """Live leases, and how many acquires are waiting for memory."""

    leases: list[Lease]
    waiting: int


@closed
class LeaseReleased(TypedDict):
    """The answer to a release: the lease as it was when released."""

    released: Literal[True]
    lease: Lease
