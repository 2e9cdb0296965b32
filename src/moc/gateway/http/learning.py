"""Learning jobs over HTTP: submit, list, look up, cancel, follow (SSE)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc.cluster.forward import is_forwarded
from moc.cluster.route import able_to_learn
from moc.errors import ExceedsCapacity, NotFound
from moc.gateway.http.body import parse, read_body
from moc.gateway.http.cluster import Forwarded, elsewhere, with_the_others
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
    """Run by the node asked for; else this one, when it has what the job
    names; else (in a cluster) a node that has it."""
    s = services(request)
    raw = await read_body(request, MAX_BODY)
    try:
        body = LearningJobRequest.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise from_validation(exc) from None
    for model in (body.base, body.model):
        if model is not None:
            check_model(request.scope, model)
    cluster = s.cluster
    if cluster is None or is_forwarded(request.scope):
        return _submit_here(request, body)
    if body.node is not None and body.node != cluster.name:
        asked = cluster.node(body.node)
        if asked is None:
            raise NotFound(f"node: no node {body.node!r} is up in the cluster", node=body.node)
        return Forwarded(cluster, asked, raw)
    try:
        return _submit_here(request, body)
    except (NotFound, ExceedsCapacity):
        other = None
        if body.node is None:
            other = able_to_learn(body.base, body.model, body.dataset, cluster.link.reachable())
        if other is None:
            raise
        return Forwarded(cluster, other, raw)


def _submit_here(request: Request, body: LearningJobRequest) -> Response:
    job = services(request).learning.submit(body, owner=caller(request.scope).id)
    return json(learning_job_view(job), 202, {"location": f"/v1/learning/jobs/{job.id}"})


async def list_jobs(request: Request) -> Response:
    s = services(request)
    status = choice(request, "status", Status)
    kind = choice(request, "kind", Kind)
    limit = whole(request, "limit", MAX_LIST, default=100)
    assert limit is not None
    mine = [learning_job_view(j) for j in s.learning.find(status, kind, limit)]
    found, headers = await with_the_others(request, s.cluster, "jobs", mine, limit)
    return json({"jobs": found}, 200, headers)


async def get_job(request: Request) -> Response:
    found = elsewhere(request, services(request).cluster)
    if found is not None:
        return found
    return json(learning_job_view(services(request).learning.get(request.path_params["job_id"])))


async def cancel_job(request: Request) -> Response:
    found = elsewhere(request, services(request).cluster)
    if found is not None:
        return found
    job = services(request).learning.cancel(request.path_params["job_id"])
    return json(learning_job_view(job))


async def events(request: Request) -> Response:
    """The job as it changes, as server-sent events: ``status`` on every change
    of status, ``progress`` per step, ``checkpoint``; the stream ends after
    the job has finished."""
    found = elsewhere(request, services(request).cluster)
    if found is not None:
        return found
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
