"""Native lease routes: /v1/leases…"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc import wire
from moc.errors import InvalidRequest
from moc.gateway.http.body import NATIVE_MAX_BODY, parse, parse_bytes, read_body
from moc.gateway.http.cluster import Forwarded, lease_home, lease_node
from moc.gateway.http.guard import audit_privileged, caller, check_owner
from moc.gateway.http.respond import json, services
from moc.gateway.http.sse import sse
from moc.gateway.http.wire import LeaseAcquireBody, LeaseReleaseBody, LeaseRenewBody
from moc.gateway.views import iso, lease_view
from moc.leases import validate
from moc.leases.model import Lease
from moc.services import Services

T = Any


def _view(s: Services, lease: Lease) -> wire.Lease:
    return lease_view(
        lease, s.clock.now(), s.leases.used_bytes(lease.id), s.leases.over_limit(lease.id)
    )


async def _until_disconnect(request: Request, work: asyncio.Task[Lease]) -> Lease:
    """Wait for ``work``, cancelling it if the client goes away first.

    The body has been read, so the next ``receive`` only returns when the
    client disconnects.
    """

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.create_task(disconnected())
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not work.done():
        work.cancel()
    return await work


async def acquire(request: Request) -> Response:
    s = services(request)
    raw = await read_body(request, NATIVE_MAX_BODY)
    body = parse_bytes(raw, LeaseAcquireBody)
    lease_request = validate.lease_request(
        limits=s.limits,
        nbytes=body.bytes,
        mb=body.mb,
        ttl_s=body.ttl_s,
        device=body.device,
        priority=body.priority,
        holder=body.holder,
        pid=body.pid,
        wait_s=body.wait_s,
        preemptible=body.preemptible,
        yield_s=body.yield_s,
        owner=caller(request.scope).id,
    )
    free_here = max((v.free for v in s.ledger.views()), default=0)
    there = lease_node(request, s.cluster, body.node, lease_request.bytes, free_here)
    if there is not None and s.cluster is not None:
        return Forwarded(s.cluster, there, raw)
    if lease_request.wait_s > 0:
        lease = await _until_disconnect(
            request, asyncio.create_task(s.leases.acquire(lease_request))
        )
    else:
        lease = await s.leases.acquire(lease_request)
    return json(_view(s, lease), 201, {"location": f"/v1/leases/{lease.id}"})


async def list_leases(request: Request) -> Response:
    s = services(request)
    device = request.query_params.get("device")
    holder = request.query_params.get("holder")
    principal = caller(request.scope)
    owner = None if principal.role.sees_all() else principal.id
    leases = s.leases.live(device=device, holder=holder, owner=owner)
    return json(
        {"leases": [_view(s, lease) for lease in leases], "waiting": s.leases.waiter_count()}
    )


async def _elsewhere(request: Request, s: Services) -> Response | None:
    """In a cluster, a lease another node holds is answered by that node."""
    home = lease_home(request, s.cluster)
    if home is None or s.cluster is None:
        return None
    return Forwarded(s.cluster, home, await read_body(request, NATIVE_MAX_BODY))


def _owned(request: Request, s: Services) -> Lease | None:
    """The live lease the path names, if the caller may see and end it (with
    auth off every caller may: None, nothing looked up twice)."""
    if not s.auth.enabled:
        return None
    lease = s.leases.get(request.path_params["lease_id"])
    check_owner(request.scope, "lease", lease.id, lease.owner)
    return lease


async def get_lease(request: Request) -> Response:
    s = services(request)
    if (there := await _elsewhere(request, s)) is not None:
        return there
    return json(_view(s, _owned(request, s) or s.leases.get(request.path_params["lease_id"])))


async def renew(request: Request) -> Response:
    s = services(request)
    if (there := await _elsewhere(request, s)) is not None:
        return there
    body = await parse(request, LeaseRenewBody)
    ttl = None if body.ttl_s is None else validate.ttl(body.ttl_s, s.limits)
    token = validate.fencing_token(body.fencing_token)
    _owned(request, s)
    lease = await s.leases.renew(request.path_params["lease_id"], ttl, token)
    return json(_view(s, lease))


async def release(request: Request) -> Response:
    s = services(request)
    if (there := await _elsewhere(request, s)) is not None:
        return there
    body = await parse(request, LeaseReleaseBody)
    token = body.fencing_token
    raw = request.query_params.get("fencing_token")
    if raw is not None:
        if not (raw.isascii() and raw.isdigit()):
            raise InvalidRequest("fencing_token", "must be a non-negative integer", value=raw)
        token = int(raw)
    token = validate.fencing_token(token)
    owned = _owned(request, s)
    lease = s.leases.release(request.path_params["lease_id"], token)
    if owned is not None:
        audit_privileged(request.scope, s, "lease.revoke", lease.id, owned.owner)
    return json({"released": True, "lease": _view(s, lease)})


async def events(request: Request) -> Response:
    """The lease's events as server-sent events: ``yield`` (release it by
    ``yield_by``), then ``ended`` with how it ended, and the stream closes."""
    s = services(request)
    if (there := await _elsewhere(request, s)) is not None:
        return there
    _owned(request, s)
    lease_id = request.path_params["lease_id"]
    queue = s.leases.watch(lease_id)

    def encode(item: dict[str, Any]) -> dict[str, Any]:
        if item.get("event") == "yield":
            return {**item, "lease_id": lease_id, "yield_by": iso(float(item["yield_by"]))}
        return {**item, "lease_id": lease_id}

    return sse(
        queue,
        encode,
        last=lambda item: item.get("event") == "ended",
        close=lambda: s.leases.unwatch(lease_id, queue),
    )


routes = [
    Route("/v1/leases", acquire, methods=["POST"]),
    Route("/v1/leases", list_leases, methods=["GET"]),
    Route("/v1/leases/{lease_id}", get_lease, methods=["GET"]),
    Route("/v1/leases/{lease_id}", release, methods=["DELETE"]),
    Route("/v1/leases/{lease_id}/renew", renew, methods=["POST"]),
    Route("/v1/leases/{lease_id}/events", events, methods=["GET"]),
]
