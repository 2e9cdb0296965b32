"""Server-sent events from a queue: each item one ``data:`` line, a comment
line now and then to keep proxies from closing an idle stream, and the
stream's end when the item says so or the client goes away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import StreamingResponse

KEEPALIVE_S = 15.0
SSE = "text/event-stream"


def sse(
    queue: asyncio.Queue[Any],
    encode: Callable[[Any], dict[str, Any] | None],
    last: Callable[[Any], bool],
    close: Callable[[], None],
) -> StreamingResponse:
    """Stream ``encode(item)`` for each item until ``last(item)``; ``close`` runs
    when the stream ends either way. An item ``encode`` maps to None is skipped."""

    async def stream() -> AsyncIterator[bytes]:
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                data = encode(item)
                if data is not None:
                    name = str(data.get("event", "message"))
                    yield b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
                if last(item):
                    return
        finally:
            close()

    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(stream(), media_type=SSE, headers=headers)
