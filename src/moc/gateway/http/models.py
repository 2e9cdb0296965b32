"""Native model routes: list, show, load, unload.

``GET /v1/models`` keeps OpenAI's list shape (``object``, ``data[].id``) so
OpenAI clients can read it, and adds moc's fields to each entry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc.errors import LoadFailed, ModelFileInvalid
from moc.gateway.http.respond import json, services
from moc.gateway.views import model_view, sizing_view, spec_view


async def _detail(request: Request, name: str) -> dict[str, Any]:
    s = services(request)
    model = s.models.view(name)
    view = model_view(model, s.started_at)
    view["spec"] = spec_view(model.spec)
    if model.spec.remote:  # moc neither places nor sizes a server it did not start
        view["size"], view["size_error"] = None, None
        return view
    try:
        view["size"] = sizing_view(await s.models.sizing(name))
        view["size_error"] = None
    except (LoadFailed, ModelFileInvalid) as exc:
        view["size"], view["size_error"] = None, exc.message
    return view


async def list_models(request: Request) -> Response:
    s = services(request)
    rows = [model_view(model, s.started_at) for model in s.models.views()]
    return json({"object": "list", "data": rows})


async def get_model(request: Request) -> Response:
    return json(await _detail(request, request.path_params["name"]))


async def load(request: Request) -> Response:
    s = services(request)
    name = request.path_params["name"]
    s.models.view(name)  # 404 before anything starts
    # The load is shared and outlives this request: a client that goes away
    # does not cancel a load that others may be waiting for.
    await asyncio.shield(s.loader.ensure_loaded(name, explicit=True))
    return json(await _detail(request, name))


async def unload(request: Request) -> Response:
    s = services(request)
    name = request.path_params["name"]
    was_loaded = await asyncio.shield(s.loader.unload(name))
    view = await _detail(request, name)
    view["unloaded"] = was_loaded
    return json(view)


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{name:path}/load", load, methods=["POST"]),
    Route("/v1/models/{name:path}/unload", unload, methods=["POST"]),
    Route("/v1/models/{name:path}", get_model, methods=["GET"]),
]
