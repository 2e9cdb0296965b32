"""Ollama's model-management routes, answered with what moc can honestly do.

moc's models come from its configuration (``models:``), not from a registry:
``pull`` of a model moc serves loads it (Ollama's clients pull before they
use a model, and a load is what makes it ready); ``delete``, ``copy``,
``create`` and ``push`` are refused in Ollama's error shape with a message
that says where models come from: 404 where the model they name (for
``create``, the one it starts ``from``) is not one moc serves, else 400.
``GET /`` answers as Ollama does, since clients probe it to find a server,
and any other ``/api/…`` path answers in Ollama's error shape rather than
OpenAI's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp

from moc.errors import InvalidRequest, MocError, ModelNotFound, NotFound
from moc.gateway.http.errors import error_json, error_response, ollama_error_body
from moc.gateway.http.guard import AUDIT_OBJECT, check_model
from moc.gateway.http.ollama import NDJSON, ollama_errors, read_doc, read_object
from moc.gateway.http.ollama import routes as inference_routes
from moc.gateway.http.respond import json, services
from moc.services import Services

FROM_CONFIG = "its models come from its configuration (models: in its config file)"
SUCCESS = {"status": "success"}


def _known(s: Services, name: str) -> None:
    """Raise ModelNotFound, saying where moc's models come from, for an unknown name."""
    try:
        s.models.view(name)
    except ModelNotFound as exc:
        raise ModelNotFound(
            f"{exc.message}; moc does not download models: {FROM_CONFIG}", **exc.details
        ) from None


@ollama_errors
async def pull(request: Request) -> ASGIApp:
    s = services(request)
    doc = await read_doc(request, s)
    name = doc["model"]
    request.scope[AUDIT_OBJECT] = name
    check_model(request.scope, name)
    _known(s, name)
    # Shielded: a client that stops reading does not cut a load others may wait on.
    loading = asyncio.shield(s.loader.ensure_loaded(name, explicit=True))
    if not doc["stream"]:
        await loading
        return json(SUCCESS)

    async def progress() -> AsyncIterator[bytes]:
        yield orjson.dumps({"status": f"loading {name}"}) + b"\n"
        try:
            await loading
        except MocError as exc:
            yield error_json(exc, ollama_error_body) + b"\n"
            return
        yield orjson.dumps(SUCCESS) + b"\n"

    return StreamingResponse(progress(), media_type=NDJSON.decode())


@ollama_errors
async def delete(request: Request) -> ASGIApp:
    s = services(request)
    name = (await read_doc(request, s, streams=False))["model"]
    _known(s, name)
    raise InvalidRequest(
        "model",
        f"moc does not delete models: {FROM_CONFIG}; remove {name} there, or unload it "
        f"(POST /v1/models/{name}/unload, or /api/generate with keep_alive 0)",
        value=name,
    )


@ollama_errors
async def copy(request: Request) -> ASGIApp:
    s = services(request)
    doc = await read_doc(request, s, streams=False, names=("source",))
    _known(s, doc["model"])
    raise InvalidRequest(
        "destination",
        f"moc does not copy models: {FROM_CONFIG}; declare another entry there with the "
        "same path and a new name",
        value=doc.get("destination"),
    )


@ollama_errors
async def create(request: Request) -> ASGIApp:
    s = services(request)
    source = (await read_object(request, s)).get("from")
    if isinstance(source, str) and source:
        _known(s, source)  # a model to start from that moc does not serve: 404
    raise InvalidRequest(
        "model",
        f"moc does not create models: {FROM_CONFIG}; declare the model there "
        "(backend llamacpp takes a GGUF file, with args for its settings)",
    )


@ollama_errors
async def push(request: Request) -> ASGIApp:
    s = services(request)
    name = (await read_doc(request, s, streams=False))["model"]
    _known(s, name)
    raise InvalidRequest(
        "model", f"moc does not push models to a registry: {FROM_CONFIG}", value=name
    )


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def unknown(request: Request) -> Response:
    """An /api/… path no route serves: 405 where the path has other methods, else 404."""
    allowed: set[str] = set()
    for route in (*inference_routes, *routes):
        match, _ = route.matches({**request.scope, "method": ""})
        if match is not Match.NONE:
            allowed |= route.methods or set()
    path, method = request.url.path, request.method
    if allowed:
        err = InvalidRequest("method", f"{method} is not allowed on {path}")
        response = error_response(err, ollama_error_body)
        response.status_code = 405
        response.headers["allow"] = ", ".join(sorted(allowed))
        return response
    return error_response(NotFound(f"no route {method} {path}"), ollama_error_body)


routes = [
    Route("/", root, methods=["GET"]),  # Starlette answers HEAD for every GET route
    Route("/api/pull", pull, methods=["POST"]),
    Route("/api/delete", delete, methods=["DELETE"]),
    Route("/api/copy", copy, methods=["POST"]),
    Route("/api/create", create, methods=["POST"]),
    Route("/api/push", push, methods=["POST"]),
]

# Last in the route table: it takes every /api/… request no other route served.
fallback = Route("/api/{rest:path}", unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
