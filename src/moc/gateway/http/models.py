"""Native model routes: list, show, load, unload.

``GET /v1/models`` keeps OpenAI's list shape (``object``, ``data[].id``) so
OpenAI clients can read it, and adds moc's fields to each entry.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc.backends.ollama import OllamaError
from moc.gateway.http.respond import json, services
from moc.gateway.views import model_view, sizing_view, spec_view
from moc.lifecycle.manager import ModelManager, Slot
from moc.models.gguf_facts import GgufError
from moc.wire import Model, ModelDetail, ModelUnloaded


def _row(m: ModelManager, slot: Slot, started_at: float) -> Model:
    return model_view(slot, m.unload_in(slot), started_at)


async def _detail(request: Request, name: str) -> ModelDetail:
    s = services(request)
    slot = s.models.slot(name)
    row = _row(s.models, slot, s.started_at)
    spec = spec_view(slot.spec)
    if slot.spec.remote:  # moc neither places nor sizes a server it did not start
        return {**row, "spec": spec, "size": None, "size_error": None}
    try:
        size = sizing_view(await s.models.sizing(name))
    except (GgufError, OllamaError) as exc:
        return {**row, "spec": spec, "size": None, "size_error": str(exc)}
    return {**row, "spec": spec, "size": size, "size_error": None}


async def list_models(request: Request) -> Response:
    s = services(request)
    rows = [_row(s.models, slot, s.started_at) for slot in s.models.slots()]
    return json({"object": "list", "data": rows})


async def get_model(request: Request) -> Response:
    return json(await _detail(request, request.path_params["name"]))


async def load(request: Request) -> Response:
    s = services(request)
    name = request.path_params["name"]
    s.models.slot(name)  # 404 before anything starts
    # The load is shared and outlives this request: a client that goes away
    # does not cancel a load that others may be waiting for.
    await asyncio.shield(s.models.ensure_loaded(name, explicit=True))
    return json(await _detail(request, name))


async def unload(request: Request) -> Response:
    s = services(request)
    name = request.path_params["name"]
    was_loaded = await asyncio.shield(s.models.unload(name))
    unloaded: ModelUnloaded = {**await _detail(request, name), "unloaded": was_loaded}
    return json(unloaded)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{name:path}/load", load, methods=["POST"]),
    Route("/v1/models/{name:path}/unload", unload, methods=["POST"]),
    Route("/v1/models/{name:path}", get_model, methods=["GET"]),
]
