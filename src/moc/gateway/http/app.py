"""The HTTP application: Starlette's router under one thin ASGI layer.

The full ``Starlette`` application wraps every request in two middlewares
(server errors, exception handlers) that cost about a tenth of moc's time per
lease operation; this layer gives the same behaviour with one: errors raised
by a handler are answered by the router's own per-route exception wrapper,
which reads the handlers this layer puts in the request scope, and routing
errors (404, 405) are caught here, before any response has started.
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from moc import errors as e
from moc.auth.routes import OPEN, access_for
from moc.gateway.http import (
    artifacts,
    cluster,
    datasets,
    goals,
    jobs,
    keys,
    learning,
    leases,
    models,
    ollama,
    ollama_manage,
    openai,
    openapi,
    system,
)
from moc.gateway.http.cluster import ClusterLayer
from moc.gateway.http.errors import error_response, internal_error_response
from moc.gateway.http.guard import Guard
from moc.services import Services

# The request head moc reads. uvicorn's httptools parser sets no bound on
# header size or count; a head over these is refused before any route runs.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100

# The router tries routes in order, each a regular expression: the traffic
# whose overhead matters most comes first, OpenAI inference, then leases (a
# lease operation costs about a third of a chat request's routing-free time,
# so a dozen routes tried before it showed), then Ollama's inference.
ROUTES: list[BaseRoute] = [
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
    *keys.routes,
    *cluster.routes,
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


def guarded(routes: list[BaseRoute], services: Services) -> list[BaseRoute]:
    """The routes, each behind its access in the route table; with auth off,
    only the audited ones (the rest as they are, at no cost)."""
    auth = services.auth
    found: list[BaseRoute] = []
    for route in routes:
        assert isinstance(route, Route)
        accesses = {m: access_for(m, route.path) for m in route.methods or () if m != "HEAD"}
        if route.path == "/metrics" and services.config.auth.metrics == "open":
            accesses = dict.fromkeys(accesses, OPEN)
        if auth.enabled or any(a.action for a in accesses.values()):
            route = copy.copy(route)
            route.app = Guard(route.app, accesses, services)
        found.append(route)
    return found


class HttpApp:
    def __init__(self, services: Services) -> None:
        self.state = State({"services": services, "openapi": openapi.encoded(services.config)})
        self.router = Router(routes=guarded(ROUTES, services))
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


def build_app(services: Services) -> ASGIApp:
    """The app; in a cluster, behind the layer that checks forwards from other
    nodes and names this node on every answer (``services.cluster`` is set
    before the app is built)."""
    app = HttpApp(services)
    found = services.cluster
    secret = services.config.cluster.secret
    if found is None or secret is None:
        return app
    return ClusterLayer(app, found, secret.get_secret_value())
