"""Async jobs over HTTP: submit, look up, list, cancel; and the stats page."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from moc.backends.state import State
from moc.cluster.forward import is_forwarded
from moc.errors import InvalidRequest
from moc.gateway.http.body import read_body
from moc.gateway.http.cluster import Forwarded, elsewhere, with_the_others
from moc.gateway.http.guard import admit_inference, audit_privileged, caller, check_owner
from moc.gateway.http.respond import json, services
from moc.gateway.views import device_view, job_view
from moc.jobs.model import Job, JobStatus, JobSubmission
from moc.scheduler.waiting import Priority
from moc.validation import from_validation

MAX_JOB_BODY = 4 * 1024 * 1024
MAX_LIST = 1000


async def submit(request: Request) -> Response:
    """Held by the node that serves its model (in a cluster; else this one)."""
    s = services(request)
    raw = await read_body(request, MAX_JOB_BODY)
    try:
        submission = JobSubmission.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise from_validation(exc) from None
    if s.cluster is not None and not is_forwarded(request.scope):
        node = await s.cluster.serving(submission.model)
        if node is not None:
            return Forwarded(s.cluster, node, raw, _Here(request, submission), idempotent=False)
    return _submit_here(request, submission)


def _submit_here(request: Request, submission: JobSubmission) -> Response:
    s = services(request)
    # Its tokens are the key's now, as its estimate: the job runs later, unseen.
    admit_inference(request.scope, s, submission.model, submission.body())
    job = s.jobs.submit(submission, owner=caller(request.scope).id)
    return json(job_view(job), 202, {"location": f"/v1/jobs/{job.id}"})


class _Here:
    """The submission held here after all: its node could not be reached."""

    def __init__(self, request: Request, submission: JobSubmission) -> None:
        self._request = request
        self._submission = submission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _submit_here(self._request, self._submission)(scope, receive, send)


def _owned(request: Request) -> Job:
    """The job the path names, if the caller may see and cancel it."""
    job = services(request).jobs.get(request.path_params["job_id"])
    check_owner(request.scope, "job", job.id, job.owner)
    return job


async def get_job(request: Request) -> Response:
    found = elsewhere(request, services(request).cluster)
    if found is not None:
        return found
    return json(job_view(_owned(request)))


async def cancel_job(request: Request) -> Response:
    found = elsewhere(request, services(request).cluster)
    if found is not None:
        return found
    s = services(request)
    owner = _owned(request).owner
    job = s.jobs.cancel(request.path_params["job_id"])
    audit_privileged(request.scope, s, "job.cancel", job.id, owner)
    return json(job_view(job))


async def list_jobs(request: Request) -> Response:
    s = services(request)
    q = request.query_params
    status = None
    if "status" in q:
        try:
            status = JobStatus(q["status"])
        except ValueError:
            allowed = "|".join(x.value for x in JobStatus)
            raise InvalidRequest(
                "status", f"must be one of {allowed}", value=q["status"], limit=allowed
            ) from None
    limit_text = q.get("limit", "100")
    whole = limit_text.isascii() and limit_text.isdigit()
    if not whole or not 1 <= int(limit_text) <= MAX_LIST:
        raise InvalidRequest(
            "limit",
            f"must be a whole number from 1 to {MAX_LIST}",
            value=limit_text,
            limit=MAX_LIST,
        )
    principal = caller(request.scope)
    owner = None if principal.role.sees_all() else principal.id
    jobs = s.jobs.find(status, q.get("model"), int(limit_text), owner)
    found, headers = await with_the_others(
        request, s.cluster, "data", [job_view(j) for j in jobs], int(limit_text)
    )
    return json({"object": "list", "data": found}, 200, headers)


async def stats(request: Request) -> Response:
    s = services(request)
    by_status: dict[str, int] = {st.value: 0 for st in JobStatus}
    by_priority: dict[str, dict[str, int]] = {p.label: {} for p in Priority}
    for (status, priority), count in s.jobs.counts().items():
        by_status[status] = by_status.get(status, 0) + count
        row = by_priority[Priority(priority).label]
        row[status] = row.get(status, 0) + count
    room = s.scheduler.room
    loaded: list[dict[str, Any]] = [
        {
            "model": model.spec.name,
            "device": model.device,
            "reserved_bytes": model.reserved,
            "in_flight": model.in_flight,
            "waiting": room.waiting_for(model.spec.name),
        }
        for model in s.models.views()
        if model.state is State.READY
    ]
    return json(
        {
            "jobs": {
                "total": sum(by_status.values()),
                "by_status": by_status,
                "by_priority": by_priority,
            },
            "queue": {
                "waiting": {p.label: room.depth(p) for p in Priority},
                "in_flight": room.in_flight,
            },
            "models": {"loaded": loaded, "catalog": len(s.models.views())},
            "devices": [device_view(d, s.ledger.view(d.id)) for d in s.devices],
        }
    )


routes = [
    Route("/v1/jobs", submit, methods=["POST"]),
    Route("/v1/jobs", list_jobs, methods=["GET"]),
    Route("/v1/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/v1/jobs/{job_id}", cancel_job, methods=["DELETE"]),
    Route("/v1/stats", stats, methods=["GET"]),
]
