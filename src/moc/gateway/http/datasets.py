"""Datasets over HTTP: upload a JSONL file, list, show, remove.

``POST /v1/datasets?name=N[&format=F][&replace=true]`` takes the file as the
raw body, whatever its content type, streamed to disk as it arrives.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc.errors import InvalidRequest
from moc.gateway.http.query import declared_length
from moc.gateway.http.respond import json, services
from moc.gateway.views import iso
from moc.learning.datasets import Dataset
from moc.learning.datasets.validate import check_format, check_name
from moc.wire import Dataset as DatasetShape

BOOLEANS = {"true": True, "false": False}


def dataset_view(ds: Dataset) -> DatasetShape:
    return {
        "id": ds.id,
        "name": ds.name,
        "format": ds.format.value,
        "rows": ds.rows,
        "bytes": ds.bytes,
        "tokens": ds.tokens,
        "digest": ds.digest,
        "created_at": iso(ds.created_at),
    }


def _flag(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false")
    if text not in BOOLEANS:
        raise InvalidRequest(name, "must be true or false", value=text, limit="true|false")
    return BOOLEANS[text]


async def add_dataset(request: Request) -> Response:
    q = request.query_params
    if "name" not in q:
        raise InvalidRequest("name", "is required (a query parameter: ?name=…)")
    name = check_name(q["name"])
    fmt = check_format(q.get("format"))
    replace = _flag(request, "replace")
    added = await services(request).datasets.add(
        name, request.stream(), format=fmt, replace=replace, declared_bytes=declared_length(request)
    )
    status = 201 if added.created else 200
    return json(dataset_view(added.dataset), status, {"location": f"/v1/datasets/{name}"})


async def list_datasets(request: Request) -> Response:
    return json({"datasets": [dataset_view(d) for d in services(request).datasets.list()]})


async def get_dataset(request: Request) -> Response:
    return json(dataset_view(services(request).datasets.get(request.path_params["name"])))


async def remove_dataset(request: Request) -> Response:
    ds = services(request).datasets.remove(request.path_params["name"])
    return json({"removed": True, "dataset": dataset_view(ds)})


routes = [
    Route("/v1/datasets", add_dataset, methods=["POST"]),
    Route("/v1/datasets", list_datasets, methods=["GET"]),
    Route("/v1/datasets/{name}", get_dataset, methods=["GET"]),
    Route("/v1/datasets/{name}", remove_dataset, methods=["DELETE"]),
]
