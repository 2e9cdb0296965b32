"""The forwarder tells a node it never reached from one that took the request
and broke off: only the first may be retried for what is not idempotent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from moc.cluster.forward import Forwarder, Unreachable
from tests.conftest import free_port

SCOPE: dict[str, Any] = {
    "method": "POST",
    "path": "/v1/jobs",
    "query_string": b"",
    "headers": [(b"content-type", b"application/json")],
}


async def _nothing(message: Any) -> None:
    raise AssertionError(f"nothing should reach the client: {message}")


async def test_a_closed_port_was_not_sent_to() -> None:
    forwarder = Forwarder("n1", "s" * 32)
    try:
        with pytest.raises(Unreachable) as failed:
            await forwarder.send(f"http://127.0.0.1:{free_port()}", SCOPE, b"{}", _nothing)
        assert failed.value.sent is False
    finally:
        await forwarder.close()


async def test_a_node_that_read_the_request_and_hung_up_may_have_taken_it() -> None:
    got = asyncio.Event()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        got.set()
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    forwarder = Forwarder("n1", "s" * 32)
    try:
        with pytest.raises(Unreachable) as failed:
            await forwarder.send(f"http://127.0.0.1:{port}", SCOPE, b"{}", _nothing)
        assert got.is_set()
        assert failed.value.sent is True
    finally:
        await forwarder.close()
        server.close()
        await server.wait_closed()
