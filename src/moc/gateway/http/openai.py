"""OpenAI-compatible inference: chat completions, completions, embeddings.

The body is checked for what moc needs and forwarded as it is; the backend's
answer comes back byte for byte, streamed as it arrives.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp

from moc.cluster.forward import is_forwarded
from moc.dispatch.request import Endpoint, parse_openai
from moc.dispatch.service import Timing
from moc.errors import MocError
from moc.gateway.http.body import read_body
from moc.gateway.http.cluster import Forwarded
from moc.gateway.http.errors import error_response
from moc.gateway.http.exchange import Exchange, RawEndpoint, relay_openai
from moc.gateway.http.respond import services


async def _inference(request: Request, endpoint: Endpoint) -> ASGIApp:
    timing = Timing()
    s = services(request)
    try:
        raw = await read_body(request, s.config.gateway.max_body)
        parsed = parse_openai(endpoint, raw, request.headers.get("x-moc-priority"))
    except MocError as exc:
        response = error_response(exc, extra_headers=timing.headers())
        s.metrics.request_done("-", "openai", response.status_code, 0.0)
        return response

    here = Exchange(s, parsed, "openai", relay_openai, timing)
    if s.cluster is not None and not is_forwarded(request.scope):
        node = await s.cluster.serving(parsed.model)
        if node is not None:
            return Forwarded(s.cluster, node, raw, here)
    return here


def _route(path: str, endpoint: Endpoint) -> Route:
    async def handler(request: Request) -> ASGIApp:
        return await _inference(request, endpoint)

    return Route(path, RawEndpoint(handler), methods=["POST"])


routes = [
    _route("/v1/chat/completions", Endpoint.CHAT),
    _route("/v1/completions", Endpoint.COMPLETION),
    _route("/v1/embeddings", Endpoint.EMBEDDING),
]
