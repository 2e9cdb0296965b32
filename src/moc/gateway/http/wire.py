"""Wire shapes of the native API: types and unknown fields only. Ranges are
checked once, for every transport, in :mod:`moc.leases.validate`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class LeaseAcquireBody(Body):
    bytes: int | None = None
    mb: int | float | None = None
    device: str | None = None
    ttl_s: int | float | None = None
    priority: int | None = None
    holder: str | None = None
    pid: int | None = None
    wait_s: int | float | None = None
    preemptible: bool = False


class LeaseRenewBody(Body):
    ttl_s: int | float | None = None
    fencing_token: int | None = None


class LeaseReleaseBody(Body):
    fencing_token: int | None = None
