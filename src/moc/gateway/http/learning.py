"""Learning jobs over HTTP: submit, list, look up, cancel, follow (SSE)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc.gateway.http.body import parse, read_body
from moc.gateway.http.guard import caller, check_model
from moc.gateway.http.query import choice, whole
from moc.gateway.http.respond import json, services
from moc.gateway.http.sse import sse
from moc.gateway.http.wire import IndexQueryBody
from moc.gateway.views import learning_job_view
from moc.learning.jobs.model import Kind, LearningJobRequest, Status
from moc.validation import from_validation

MAX_BODY = 1024 * 1024
MAX_LIST = 1000


async def submit(request: Request) -> Response:
    raw = await read_body(request, MAX_BODY)
    try:
        body = LearningJobRequest.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise from_validation(exc) from None
    for model in (body.base, body.model):
        if model is not None:
            check_model(request.scope, model)
    job = services(request).learning.submit(body, owner=caller(request.scope).id)
    return json(learning_job_view(job), 202, {"location": f"/v1/learning/jobs/{job.id}"})


async def list_jobs(request: Request) -> Response:
    status = choice(request, "status", Status)
    kind = choice(request, "kind", Kind)
    limit = whole(request, "limit", MAX_LIST, default=100)
    assert limit is not None
    jobs = services(request).learning.find(status, kind, limit)
    return json({"jobs": [learning_job_view(j) for j in jobs]})


async def get_job(request: Request) -> Response:
    return json(learning_job_view(services(request).learning.get(request.path_params["job_id"])))


async def cancel_job(request: Request) -> Response:
    job = services(request).learning.cancel(request.path_params["job_id"])
    return json(learning_job_view(job))


async def events(request: Request) -> Response:
    """The job as it changes, as server-sent events: ``status`` on every change
    of status, ``progress`` per step, ``checkpoint``; the stream ends after
    the job has finished."""
    runner = services(request).learning
    job_id = request.path_params["job_id"]
    queue = runner.watch(job_id)

    def encode(item: dict[str, Any]) -> dict[str, Any] | None:
        if item["event"] == "end":
            return None
        return {"event": item["event"], "job": learning_job_view(item["job"])}

    def last(item: dict[str, Any]) -> bool:
        job = item.get("job")
        return item["event"] == "end" or (job is not None and job.status.value in _DONE)

    return sse(queue, encode, last, close=lambda: runner.unwatch(job_id, queue))


_DONE = {"complete", "failed", "cancelled"}


async def query_index(request: Request) -> Response:
    body = await parse(request, IndexQueryBody)
    name = request.path_params["name"]
    hits = await services(request).indexes.query(name, body.query, body.k)
    results = [
        {"text": h.text, "score": round(h.score, 6), "source": h.source, "doc_id": h.doc_id}
        for h in hits
    ]
    return json({"index": name, "results": results})


async def list_indexes(request: Request) -> Response:
    return json({"indexes": services(request).indexes.names()})


routes = [
    Route("/v1/learning/jobs", submit, methods=["POST"]),
    Route("/v1/learning/jobs", list_jobs, methods=["GET"]),
    Route("/v1/learning/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/v1/learning/jobs/{job_id}", cancel_job, methods=["DELETE"]),
    Route("/v1/learning/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/v1/learning/jobs/{job_id}/events", events, methods=["GET"]),
    Route("/v1/indexes", list_indexes, methods=["GET"]),
    Route("/v1/indexes/{name}/query", query_index, methods=["POST"]),
]
