"""Leases as values: the validated request, the lease, how a lease ended."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PRIORITY_MIN = 0
PRIORITY_MAX = 100
PRIORITY_DEFAULT = 50


class EndState(StrEnum):
    RELEASED = "released"  # the holder gave it back
    EXPIRED = "expired"  # its TTL ran out without a renew
    REVOKED = "revoked"  # a higher-priority request took its memory


@dataclass(frozen=True)
class LeaseRequest:
    """An acquire request that passed validation; nothing deeper sees raw input."""

    bytes: int
    ttl_s: float
    device: str | None = None
    priority: int = PRIORITY_DEFAULT
    holder: str = ""
    pid: int | None = None
    wait_s: float = 0.0
    preemptible: bool = False
    yield_s: float | None = None  # yieldable: how long the holder needs to let go
    owner: str = ""  # the key (or token subject) that asked; "" with auth off


@dataclass(frozen=True)
class Lease:
    """A grant of ``bytes`` on ``device`` until ``expires_at`` (seconds, clock time)."""

    id: str
    device: str
    bytes: int
    holder: str
    pid: int | None
    priority: int
    preemptible: bool
    fencing_token: int
    ttl_s: float
    created_at: float
    expires_at: float
    yield_s: float | None = None  # yieldable: moc asks it to let go instead of waiting
    yield_by: float | None = None  # asked to yield: released by then, or revoked
    owner: str = ""  # the key (or token subject) it was granted to; "" with auth off


@dataclass(frozen=True)
class Ended:
    """What is remembered of a lease after it ended, to answer why."""

    id: str
    state: EndState
    at: float
