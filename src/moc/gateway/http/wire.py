"""Wire shapes of the native API's request bodies: types and unknown fields
only. Ranges are checked once, for every transport, in :mod:`moc.leases.validate`.

The OpenAPI document's request components are these models' JSON Schemas,
with those ranges added (:mod:`moc.gateway.http.openapi_requests`); each
field's description is its meaning there.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


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
    """``POST /v1/leases``: memory on a device for a holder, until released or expired.
    Every field but preemptible reads null as not given."""

    bytes: Integer | None = Field(None, description="how much, in bytes; or give mb")
    mb: int | float | None = Field(None, description="how much, in MiB; or give bytes")
    device: str | None = Field(None, description="the device to hold it on; default: best fit")
    ttl_s: int | float | None = Field(None, description="seconds until it expires unless renewed")
    priority: Integer | None = Field(
        None, description="a higher priority may revoke a preemptible lease"
    )
    holder: str | None = Field(None, description="who holds it, as listings show it")
    pid: Integer | None = Field(
        None, description="the process that will use the memory, which moc then measures"
    )
    wait_s: int | float | None = Field(
        None, description="seconds to wait for room before answering insufficient_memory"
    )
    preemptible: bool = Field(False, description="whether a higher priority may revoke it")
    node: str | None = Field(
        None,
        description="in a cluster: the node to hold it on; default: this one, or the "
        "node with the most free memory when this one has too little",
    )
    yield_s: int | float | None = Field(
        None,
        description="yieldable: when a load or a higher priority needs the memory, moc asks "
        "the holder to release it within this many seconds (renew answers and "
        "/v1/leases/{lease_id}/events say so), then revokes it",
    )


class LeaseRenewBody(Body):
    """``POST /v1/leases/{lease_id}/renew``: the lease's expiry moved to ttl_s from now."""

    ttl_s: int | float | None = Field(
        None, description="seconds from now until it expires; default: the lease's ttl_s"
    )
    fencing_token: Integer | None = Field(
        None, description="the lease's fencing token, to prove this grant is held"
    )


class LeaseReleaseBody(Body):
    """``DELETE /v1/leases/{lease_id}``: the lease's memory given back."""

    fencing_token: Integer | None = Field(
        None,
        description="the lease's fencing token, to prove this grant is held; "
        "the fencing_token query parameter wins over it",
    )


class GoalCreateBody(Body):
    """``POST /v1/goals``: a goal that learning jobs may name; null reads as not given."""

    # Ranges are checked in moc.learning.goals.model, for every transport.

    name: str = Field(description="its handle, in /v1/goals/{name}")
    weight: int | float = Field(description="its share of job starts, against the other goals'")
    description: str | None = Field(None, description="what the goal is for")
    status: str | None = Field(None, description="active (the default), paused or done")


class GoalUpdateBody(Body):
    """``PATCH /v1/goals/{name}``: the fields given are changed; null or absent
    leaves one as it is."""

    weight: int | float | None = Field(None, description="its share of job starts")
    description: str | None = Field(None, description="what the goal is for")
    status: str | None = Field(
        None, description="paused: its running jobs yield and its queued ones wait"
    )


class IndexQueryBody(Body):
    """``POST /v1/indexes/{name}/query``: the chunks of an index closest to a query."""

    query: str = Field(min_length=1, max_length=8192, description="what to look for")
    k: Integer = Field(5, ge=1, le=100, description="how many chunks")


class SigningKeyCreateBody(Body):
    """``POST /v1/signing-keys``: a new key moc may sign artifacts with."""

    name: str = Field(description="its handle, in /v1/signing-keys/{name} and key files")
    type: str | None = Field(None, description="ed25519 (the default) or ecdsa-p256")


class KeyCreateBody(Body):
    """``POST /v1/keys``: a new API key; its secret is in the answer, once.
    Ranges are checked in :mod:`moc.auth.validate`."""

    name: str = Field(description="what the key is for")
    role: str = Field(description="admin, operator, user or viewer")
    models: list[str] | None = Field(
        None, description="globs of the models it may use; null: every model"
    )
    limits: dict[str, Integer | None] | None = Field(
        None, description="its limits (a limit left out or null is no limit); null: none"
    )
    expires_at: str | None = Field(None, description="refused from then on (ISO 8601)")


class KeyRotateBody(Body):
    """``POST /v1/keys/{id}/rotate``: a new secret for the key."""

    grace_s: int | float = Field(0, description="seconds the old secret still works")
