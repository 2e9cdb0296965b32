"""Turning wire values into a LeaseRequest: every range check, in one place.

Both transports (HTTP, gRPC) call :func:`lease_request` after their own type
checks, so a limit is enforced identically whichever way a request arrives,
and every message names the field, the limit and the value.
"""

from __future__ import annotations

from dataclasses import dataclass

from moc.config import LeasesConfig
from moc.errors import InvalidRequest
from moc.leases.model import PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN, LeaseRequest

MIB = 1024 * 1024
MAX_BYTES = 2**50  # 1 PiB: larger is a unit mistake, not a device
MIN_MB = 1 / MIB  # one byte: less would round to an empty lease
MAX_HOLDER = 200
MAX_PID = 2**22  # Linux's pid_max ceiling
MIN_YIELD_S = 0.1  # how long a yieldable lease's holder may take to let go
MAX_YIELD_S = 3600.0


@dataclass(frozen=True)
class TtlLimits:
    default_ttl_s: float
    max_ttl_s: float
    max_wait_s: float

    @classmethod
    def of(cls, config: LeasesConfig) -> TtlLimits:
        return cls(config.default_ttl_s, config.max_ttl_s, config.max_wait_s)


MAX_TOKEN = 2**63 - 1  # what SQLite stores


def fencing_token(value: int | None) -> int | None:
    """A caller's fencing token: none, or an integer a lease may have been given."""
    if value is not None and not 0 <= value <= MAX_TOKEN:
        raise InvalidRequest(
            "fencing_token", f"must be an integer from 0 to {MAX_TOKEN}", value=value
        )
    return value


def ttl(value: float | None, limits: TtlLimits, field: str = "ttl_s") -> float:
    if value is None:
        return limits.default_ttl_s
    if not 1 <= value <= limits.max_ttl_s:
        raise InvalidRequest(
            field,
            f"must be between 1 and {limits.max_ttl_s:g} seconds",
            value=value,
            limit=limits.max_ttl_s,
        )
    return float(value)


def lease_request(
    *,
    limits: TtlLimits,
    nbytes: int | None = None,
    mb: int | float | None = None,
    ttl_s: float | None = None,
    device: str | None = None,
    priority: int | None = None,
    holder: str | None = None,
    pid: int | None = None,
    wait_s: float | None = None,
    preemptible: bool = False,
    yield_s: float | None = None,
    owner: str = "",
) -> LeaseRequest:
    if (nbytes is None) == (mb is None):
        raise InvalidRequest("bytes", "give exactly one of 'bytes' or 'mb'")
    if mb is not None:
        if not MIN_MB <= mb <= MAX_BYTES // MIB:
            raise InvalidRequest(
                "mb",
                f"must be greater than 0 and at most {MAX_BYTES // MIB}; "
                f"the smallest lease is one byte ({MIN_MB:.10g})",
                value=mb,
                limit=MAX_BYTES // MIB,
            )
        nbytes = int(mb * MIB)
    assert nbytes is not None
    if not 0 < nbytes <= MAX_BYTES:
        raise InvalidRequest(
            "bytes",
            f"must be greater than 0 and at most {MAX_BYTES}",
            value=nbytes,
            limit=MAX_BYTES,
        )
    if priority is None:
        priority = PRIORITY_DEFAULT
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidRequest(
            "priority",
            f"must be between {PRIORITY_MIN} and {PRIORITY_MAX}",
            value=priority,
            limit=PRIORITY_MAX,
        )
    if holder is not None and len(holder) > MAX_HOLDER:
        raise InvalidRequest(
            "holder",
            f"must be at most {MAX_HOLDER} characters",
            value=f"{holder[:20]}…",
            limit=MAX_HOLDER,
        )
    if pid is not None and not 0 < pid <= MAX_PID:
        raise InvalidRequest("pid", f"must be between 1 and {MAX_PID}", value=pid, limit=MAX_PID)
    if wait_s is None:
        wait_s = 0.0
    if not 0 <= wait_s <= limits.max_wait_s:
        raise InvalidRequest(
            "wait_s",
            f"must be between 0 and {limits.max_wait_s:g} seconds",
            value=wait_s,
            limit=limits.max_wait_s,
        )
    if yield_s is not None and not MIN_YIELD_S <= yield_s <= MAX_YIELD_S:
        raise InvalidRequest(
            "yield_s",
            f"must be between {MIN_YIELD_S:g} and {MAX_YIELD_S:g} seconds",
            value=yield_s,
            limit=MAX_YIELD_S,
        )
    if device is not None and not device:
        raise InvalidRequest("device", "must not be empty; leave it out for best fit")
    return LeaseRequest(
        bytes=nbytes,
        ttl_s=ttl(ttl_s, limits),
        device=device,
        priority=priority,
        holder=holder or "",
        pid=pid,
        wait_s=float(wait_s),
        preemptible=preemptible,
        yield_s=None if yield_s is None else float(yield_s),
        owner=owner,
    )
