"""Native model routes: list, show, load, unload.

``GET /v1/models`` keeps OpenAI's list shape (``object``, ``data[].id``) so
OpenAI clients can read it, and adds moc's fields to each entry.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc.errors import LoadFailed, ModelFileInvalid
from moc.gateway.http.guard import check_model
from moc.gateway.http.respond import json, services
from moc.gateway.views import model_view, sizing_view, spec_view
from moc.wire import ModelDetail, ModelUnloaded


async def _detail(request: Request, name: str) -> ModelDetail:
    s = services(request)
    model = s.models.view(name)
    row = model_view(model, s.started_at)
    spec = spec_view(model.spec)
    if model.spec.remote:  # moc neither places nor sizes a server it did not start
        return {**row, "spec": spec, "size": None, "size_error": None}
    try:
        size = sizing_view(await s.models.sizing(name))
    except (LoadFailed, ModelFileInvalid) as exc:
        return {**row, "spec": spec, "size": None, "size_error": exc.message}
    return {**row, "spec": spec, "size": size, "size_error": None}


async def list_models(request: Request) -> Response:
    s = services(request)
    rows = [model_view(model, s.started_at) for model in s.models.views()]
    return json({"object": "list", "data": rows})


async def get_model(request: Request) -> Response:
    return json(await _detail(request, request.path_params["name"]))


async def load(request: Request) -> Response:
    s = services(request)
    name = request.path_params["name"]
    check_model(request.scope, name)
    s.models.view(name)  # 404 before anything starts
    # The load is shared and outlives this request: a client that goes away
    # does not cancel a load that others may be waiting for.
    await asyncio.shield(s.loader.ensure_loaded(name, explicit=True))
    return json(await _detail(request, name))


async def unload(request: Request) -> Response:
    s = services(request)
    name = request.path_params["name"]
    check_model(request.scope, name)
    was_loaded = await asyncio.shield(s.loader.unload(name))
    unloaded: ModelUnloaded = {**await _detail(request, name), "unloaded": was_loaded}
    return json(unloaded)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{name:path}/load", load, methods=["POST"]),
    Route("/v1/models/{name:path}/unload", unload, methods=["POST"]),
    Route("/v1/models/{name:path}", get_model, methods=["GET"]),
]
