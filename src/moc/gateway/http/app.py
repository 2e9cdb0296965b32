"""The HTTP application: Starlette's router under one thin ASGI layer.

The full ``Starlette`` application wraps every request in two middlewares
(server errors, exception handlers) that cost about a tenth of moc's time per
lease operation; this layer gives the same behaviour with one: errors raised
by a handler are answered by the router's own per-route exception wrapper,
which reads the handlers this layer puts in the request scope, and routing
errors (404, 405) are caught here, before any response has started.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Router
from starlette.types import Receive, Scope, Send

from moc import errors as e
from moc.gateway.http import (
    artifacts,
    datasets,
    goals,
    jobs,
    learning,
    leases,
    models,
    ollama,
    ollama_manage,
    openai,
    openapi,
    system,
)
from moc.gateway.http.errors import error_response, internal_error_response
from moc.services import Services

# The request head moc reads. uvicorn's httptools parser sets no bound on
# header size or count; a head over these is refused before any route runs.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100

# The router tries routes in order, each a regular expression: the traffic
# whose overhead matters most comes first, OpenAI inference, then leases (a
# lease operation costs about a third of a chat request's routing-free time,
# so a dozen routes tried before it showed), then Ollama's inference.
ROUTES = [
    *openai.routes,
    *leases.routes,
    *ollama.routes,
    *system.routes,
    *models.routes,
    *jobs.routes,
    *datasets.routes,
    *goals.routes,
    *learning.routes,
    *artifacts.routes,
    *ollama_manage.routes,
    ollama_manage.fallback,  # last: any /api/… path no route above serves
]


def _oversized_head(headers: list[tuple[bytes, bytes]]) -> Response | None:
    if len(headers) > MAX_HEADERS:
        err = e.InvalidRequest(
            "headers", "too many request headers", value=len(headers), limit=MAX_HEADERS
        )
    else:
        size = sum(len(k) + len(v) for k, v in headers)
        if size <= MAX_HEADER_BYTES:
            return None
        err = e.InvalidRequest(
            "headers", "request headers too large (bytes)", value=size, limit=MAX_HEADER_BYTES
        )
    response = error_response(err)
    response.status_code = 431
    return response


def _routing_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:
        return error_response(e.NotFound(f"no route {request.method} {request.url.path}"))
    if exc.status_code == 405:
        response = error_response(
            e.InvalidRequest("method", f"{request.method} is not allowed on {request.url.path}")
        )
        response.status_code = 405
        response.headers.update(exc.headers or {})  # Allow: the methods the path takes
        return response
    return error_response(e.InvalidRequest("request", str(exc.detail)))


async def _on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, e.MocError):
        return error_response(exc)
    if isinstance(exc, HTTPException):
        return _routing_error(request, exc)
    return internal_error_response(exc)


class HttpApp:
    def __init__(self, services: Services) -> None:
        self.state = State({"services": services, "openapi": openapi.encoded(services.config)})
        self.router = Router(routes=ROUTES)
        self._handlers: tuple[dict[Any, Any], dict[int, Any]] = ({Exception: _on_error}, {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; websockets are not served
        scope["app"] = self
        scope["starlette.exception_handlers"] = self._handlers
        if (refused := _oversized_head(scope["headers"])) is not None:
            await refused(scope, receive, send)
            return
        try:
            await self.router(scope, receive, send)
        except HTTPException as exc:
            await _routing_error(Request(scope), exc)(scope, receive, send)


def build_app(services: Services) -> HttpApp:
    return HttpApp(services)
