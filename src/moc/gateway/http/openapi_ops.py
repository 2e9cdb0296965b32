"""The building blocks of moc's OpenAPI document: an operation, its answers
and their headers, the errors a status carries (from the one mapping in
:mod:`moc.gateway.http.errors`), path and query parameters, event streams."""

from __future__ import annotations

from typing import Any

from moc.gateway.http.errors import ErrorKind, error_kinds
from moc.gateway.http.openapi_schemas import Schema, ref
from moc.gateway.http.sse import SSE

JSON = "application/json"
STRING = {"type": "string"}
# What a status means beyond the codes that map to it: 431 is the app's
# request-head limit, and an inference route passes a backend's own 500 back.
_ALSO = {
    431: "invalid_request: the request head is over 64 KiB or 100 headers",
    500: "(on inference routes also a backend's own 500, passed back)",
}


def _statuses() -> dict[int, list[ErrorKind]]:
    by_status: dict[int, list[ErrorKind]] = {}
    for kind in error_kinds():
        by_status.setdefault(kind.status, []).append(kind)
    return by_status


_BY_STATUS = _statuses()
ERRORS = {
    status: ", ".join(k.code for k in kinds) + (f" {_ALSO[status]}" if status in _ALSO else "")
    for status, kinds in sorted(_BY_STATUS.items())
}
ERRORS[431] = _ALSO[431]


def content(schema: Schema, media: str = JSON) -> dict[str, Any]:
    return {media: {"schema": schema}}


def answer(description: str, schema: Schema, **headers: bool) -> dict[str, Any]:
    """A response; ``headers`` names header components and whether each is required."""
    out: dict[str, Any] = {"description": description, "content": content(schema)}
    if headers:
        out["headers"] = {_HEADER_NAMES[h]: header(h, req) for h, req in headers.items()}
    return out


def header(name: str, required: bool) -> dict[str, Any]:
    return {**_HEADERS[name], "required": required}


_HEADER_NAMES = {
    "Location": "Location",
    "RetryAfter": "Retry-After",
    "QueueMs": "x-moc-queue-ms",
    "OverheadMs": "x-moc-overhead-ms",
}
_HEADERS: dict[str, dict[str, Any]] = {
    "Location": {"description": "the new resource's path", "schema": {"type": "string"}},
    "RetryAfter": {
        "description": "whole seconds after which a retry may succeed",
        "schema": {"type": "integer", "minimum": 1},
    },
    "QueueMs": {
        "description": "milliseconds the request waited in the queue and for its model to load",
        "schema": {"type": "number", "minimum": 0},
    },
    "OverheadMs": {
        "description": "milliseconds of moc's own time (not queue, load or backend)",
        "schema": {"type": "number", "minimum": 0},
    },
}


def failures(*statuses: int, shape: str = "Error", timed: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        headers = {"QueueMs": False, "OverheadMs": False} if timed else {}
        retrying = [k.retry_after for k in _BY_STATUS[status]]
        if any(retrying):
            # Required where every code of the status carries it, except where a
            # backend's own answer of that status may be passed back (timed).
            headers["RetryAfter"] = all(retrying) and not timed
        out[str(status)] = answer(ERRORS[status], ref(shape), **headers)
    return out


def op(
    summary: str,
    ok: dict[str, Any] | None,
    errors: dict[str, Any] | None = None,
    *,
    params: list[dict[str, Any]] | None = None,
    body: Schema | None = None,
    body_required: bool = True,
    status: int = 200,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            **({str(status): ok} if ok is not None else {}),  # None: moc never carries it out
            "431": answer(ERRORS[431], ref("Error")),
            "500": answer(ERRORS[500], ref("Error")),
            **(errors or {}),
        },
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": content(body)}
    return op


def path_param(name: str) -> dict[str, Any]:
    schema = {"type": "string", "minLength": 1}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def query_param(name: str, schema: Schema) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def stream(description: str) -> dict[str, Any]:
    """A server-sent event stream: ``event:`` and ``data:`` lines, JSON in each data."""
    return {"description": description, "content": content({"type": "string"}, SSE)}
