"""Query parameters read into typed values, each refusal naming the
parameter, what it may be and what was sent (400 ``invalid_request``)."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from starlette.requests import Request

from moc.errors import InvalidRequest

E = TypeVar("E", bound=StrEnum)


def choice(request: Request, name: str, kind: type[E], *, required: bool = False) -> E | None:
    """One of ``kind``'s values, or None when the parameter is absent."""
    raw = request.query_params.get(name)
    if raw is None:
        if required:
            raise InvalidRequest(name, f"is required (a query parameter: ?{name}=…)")
        return None
    try:
        return kind(raw)
    except ValueError:
        allowed = "|".join(x.value for x in kind)
        raise InvalidRequest(name, f"must be one of {allowed}", value=raw, limit=allowed) from None


def whole(request: Request, name: str, highest: int, default: int | None = None) -> int | None:
    """A whole number from 1 to ``highest``, or ``default`` when absent."""
    text = request.query_params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= highest:
        raise InvalidRequest(
            name, f"must be a whole number from 1 to {highest}", value=text, limit=highest
        )
    return int(text)


def declared_length(request: Request) -> int | None:
    """The body's declared length (``content-length``), if it says one."""
    text = request.headers.get("content-length")
    return int(text) if text is not None and text.isascii() and text.isdigit() else None
