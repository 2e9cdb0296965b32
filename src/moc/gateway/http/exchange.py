"""Answering one inference request: an ASGI callable around the dispatcher.

A route validates the request and returns an :class:`Exchange`; the exchange
runs the request through the dispatcher and hands the backend's answer to its
:data:`Relay`: the OpenAI routes pass the bytes through as they arrive, the
Ollama routes translate them.

A client that goes away is noticed while the request waits in the queue, while
its model loads and while the backend works: the watcher cancels the request,
which withdraws it from the queue or closes the backend connection (the
backend then stops generating). That cancellation is moc's own, so it ends
here and is counted, not raised into the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from moc.dispatch.choices import ask_each
from moc.dispatch.request import InferenceRequest
from moc.dispatch.service import Opened, Timing
from moc.dispatch.upstream import UpstreamFailed
from moc.errors import MocError
from moc.gateway.http.errors import (
    Shape,
    error_body,
    error_json,
    error_response,
    http_status,
    internal_error_response,
)
from moc.gateway.http.guard import admit_inference
from moc.services import Services

# Writes the backend's answer to the client; returns the HTTP status sent.
Relay = Callable[[Opened, Send, Timing, "Exchange"], Awaitable[int]]

CLIENT_GONE = 499  # the status nginx logs for a client that closed the request
WATCH_AFTER_S = 0.005  # a request answered sooner is not watched for a disconnect


class _DisconnectWatch:
    """Cancel the current task if the client disconnects inside the block.

    The request body has been read, so the next message can only be
    ``http.disconnect`` (which the server also sends once the response is
    complete; ``finishing`` tells the two apart). The cancellation is moc's
    own: it ends here, and ``gone`` says it happened.

    The watching task starts only when the block has lasted ``WATCH_AFTER_S``:
    most requests to a fast backend are answered sooner, and a task per
    request is a measurable share of moc's own time. A client that went away
    before is noticed as the task starts (the server keeps the disconnect).
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.gone = False
        self.finishing = False
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None

    def _start(self) -> None:
        self._timer = None
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.finishing:
            self.gone = True
            assert self._task is not None
            self._task.cancel()

    async def __aenter__(self) -> _DisconnectWatch:
        self._task = asyncio.current_task()
        self._timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._start)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        assert self._task is not None
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        task, self._task, self._timer, self._watcher = self._task, None, None, None  # no cycle
        if kind is asyncio.CancelledError and self.gone:
            task.uncancel()
            return True
        return False


class Exchange:
    def __init__(
        self,
        services: Services,
        request: InferenceRequest,
        api: str,
        relay: Relay,
        timing: Timing,
        shape: Shape = error_body,
    ) -> None:
        self.services = services
        self.request = request
        self.api = api
        self.relay = relay
        self.timing = timing
        self.shape = shape
        self.watch: _DisconnectWatch | None = None
        self.started = False  # the response's status line has been sent
        self.stage = "queued"  # then "running", once the scheduler admitted it
        self._asgi: tuple[Scope, Receive] | None = None  # set while it runs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._asgi = (scope, receive)
        s = self.services
        status = CLIENT_GONE
        self.watch = watch = _DisconnectWatch(receive)
        try:
            async with watch:
                try:
                    admit_inference(scope, s, self.request.model, self.request.doc)
                except MocError as exc:
                    status = await self.send_error(send, exc)
                    return
                if self.request.n > 1:
                    status = await self._answer_choices(send)
                    return
                try:
                    opened = await s.dispatcher.open(self.request, self.timing)
                except MocError as exc:
                    status = await self.send_error(send, exc)
                    return
                self.stage = "running"
                try:
                    status = await self.relay(opened, send, self.timing, self)
                finally:
                    opened.close()
        finally:
            model = self.request.model if s.models.knows(self.request.model) else "-"
            if watch.gone:
                s.metrics.requests_abandoned.labels(model, self.stage).inc()
            s.metrics.request_done(model, self.api, status, time.monotonic() - self.timing.arrived)

    async def _answer_choices(self, send: Send) -> int:
        """``n`` > 1: each choice asked for on its own, answered as one whole body."""

        def admitted() -> None:
            self.stage = "running"

        try:
            status, body = await ask_each(
                self.services.dispatcher, self.request, self.timing, admitted
            )
        except MocError as exc:
            return await self.send_error(send, exc)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *self.timing.headers(),
        ]
        await self.start(send, status, headers)
        self.finishing()
        await send({"type": "http.response.body", "body": body})
        return status

    async def send_error(self, send: Send, exc: MocError) -> int:
        response = error_response(exc, self.shape, self.timing.headers())
        self.finishing()
        self.started = True
        assert self._asgi is not None
        await response(*self._asgi, send)
        return response.status_code

    async def start(self, send: Send, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.started = True
        await send({"type": "http.response.start", "status": status, "headers": headers})

    def finishing(self) -> None:
        """The last bytes are about to go: a disconnect from now on is the normal end."""
        if self.watch is not None:
            self.watch.finishing = True


Handler = Callable[[Request], Awaitable[ASGIApp]]


class RawEndpoint:
    """A route's endpoint as a bare ASGI app: the handler turns the request into
    an app (an :class:`Exchange`, or an error response) that answers it.

    Starlette wraps a function endpoint in a Request object and a wrapper
    around every ``send``; for inference, where moc's own time is the product,
    that is measurable, so these routes do without. An unexpected exception is
    still answered with the 500 envelope when no response has started.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: ASGIApp | None = None
        try:
            app = await self.handler(Request(scope, receive))
            await app(scope, receive, send)
        except Exception as exc:
            if isinstance(app, Exchange) and app.started:
                raise  # mid-answer: the server closes the connection
            await internal_error_response(exc)(scope, receive, send)


def error_event(exc: MocError) -> bytes:
    """An error as one server-sent event, the way OpenAI streams report them."""
    return b"data: " + error_json(exc) + b"\n\n"


async def relay_openai(opened: Opened, send: Send, timing: Timing, exchange: Exchange) -> int:
    """The backend's answer as it is: streamed when it streams, whole otherwise."""
    reply = opened.reply
    headers = [(b"content-type", reply.content_type.encode()), *timing.headers()]
    if not reply.content_type.startswith("text/event-stream"):
        try:
            body = await reply.read()
        except UpstreamFailed as exc:
            failed = exchange.services.dispatcher.stream_failed(opened, exc)
            return await exchange.send_error(send, failed)
        headers.append((b"content-length", str(len(body)).encode()))
        await exchange.start(send, reply.status, headers)
        exchange.finishing()
        await send({"type": "http.response.body", "body": body})
        return reply.status
    headers.append((b"cache-control", b"no-cache"))
    await exchange.start(send, reply.status, headers)
    try:
        async for chunk in reply.chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamFailed as exc:
        failed = exchange.services.dispatcher.stream_failed(opened, exc)
        exchange.finishing()
        event = error_event(failed)
        await send({"type": "http.response.body", "body": event + b"data: [DONE]\n\n"})
        return http_status(failed)
    exchange.finishing()
    await send({"type": "http.response.body", "body": b""})
    return reply.status
