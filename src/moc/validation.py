"""pydantic's complaints as moc's errors: the first problem, naming the field,
the limit and the value, at every edge that validates with pydantic."""

from __future__ import annotations

from pydantic import ValidationError

from moc.errors import InvalidRequest


def from_validation(
    exc: ValidationError,
    prefix: str = "",
    contradiction: type[InvalidRequest] = InvalidRequest,
) -> InvalidRequest:
    """The first problem pydantic found. ``prefix`` names where the model sits
    in the request (``params``); a model validator's complaint (values that
    each are fine but do not go together) is a ``contradiction``."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "body"
    if prefix:
        field = f"{prefix}.{field}" if field != "body" else prefix
    if first["type"] == "extra_forbidden":
        problem = "unknown field"
    elif first["type"] == "missing":
        problem = "is required"
    else:
        problem = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    if first["type"] in ("missing", "json_invalid") or isinstance(value, dict | list):
        value = None
    ctx = first.get("ctx") or {}
    limit = ctx.get("gt", ctx.get("le"))
    kind = contradiction if first["type"] == "value_error" else InvalidRequest
    return kind(field, problem, value=value, limit=limit)
