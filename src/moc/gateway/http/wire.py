"""Wire shapes of the native API: types and unknown fields only. Ranges are
checked once, for every transport, in :mod:`moc.leases.validate`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _integral(value: Any) -> Any:
    """JSON has one number type: ``2.0`` is the integer 2 (as JSON Schema says).
    Anything else is left for the strict check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class LeaseAcquireBody(Body):
    bytes: Integer | None = None
    mb: int | float | None = None
    device: str | None = None
    ttl_s: int | float | None = None
    priority: Integer | None = None
    holder: str | None = None
    pid: Integer | None = None
    wait_s: int | float | None = None
    preemptible: bool = False


class LeaseRenewBody(Body):
    ttl_s: int | float | None = None
    fencing_token: Integer | None = None


class LeaseReleaseBody(Body):
    fencing_token: Integer | None = None
