"""Reading request bodies: size-capped, JSON, into a strict pydantic model."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from moc.errors import InvalidRequest
from moc.validation import from_validation

M = TypeVar("M", bound=BaseModel)

NATIVE_MAX_BODY = 64 * 1024


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise InvalidRequest(
            "body",
            f"is larger than the {max_bytes}-byte limit",
            value=int(declared),
            limit=max_bytes,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise InvalidRequest(
                "body", f"is larger than the {max_bytes}-byte limit", limit=max_bytes
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def parse(request: Request, model: type[M], max_bytes: int = NATIVE_MAX_BODY) -> M:
    return parse_bytes(await read_body(request, max_bytes), model)


def parse_bytes(raw: bytes, model: type[M]) -> M:
    if not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise from_validation(exc) from None
