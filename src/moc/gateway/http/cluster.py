"""The cluster over HTTP: ``GET /v1/cluster``, the check of a forward from
another node, ``x-moc-node`` on every answer, and an inference request sent
on to the node that serves its model."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moc import wire
from moc.auth.principal import Limits, Principal
from moc.auth.roles import Role
from moc.cluster.forward import CALLER, NODE, SECRET, header, is_forwarded
from moc.cluster.model import NodeInfo
from moc.cluster.service import Cluster
from moc.errors import LeaseLost, MocError, NotFound, Unauthenticated, Unavailable
from moc.gateway.http.errors import error_response
from moc.gateway.http.guard import FORWARDED_CALLER, PRINCIPAL, caller
from moc.gateway.http.respond import json, services


def _node_view(node: NodeInfo, here: str, now: float) -> wire.ClusterNode:
    return {
        "name": node.name,
        "url": node.url,
        "up": True,
        "self": node.name == here,
        "devices": [
            {
                "id": d.id,
                "kind": d.kind,
                "capacity_bytes": d.capacity,
                "held_bytes": d.held,
                "free_bytes": d.free,
            }
            for d in node.devices
        ],
        "models": [{"name": m.name, "state": m.state, "bytes": m.bytes} for m in node.models],
        "queued": node.queued,
        "in_flight": node.in_flight,
        "seen_s_ago": round(max(0.0, now - node.at), 3),
    }


async def cluster_view(request: Request) -> Response:
    s = services(request)
    cluster = s.cluster
    if cluster is None:
        off: wire.ClusterView = {"enabled": False, "node": None, "redis": None, "nodes": []}
        return json(off)
    now = s.clock.now()
    view: wire.ClusterView = {
        "enabled": True,
        "node": cluster.name,
        "redis": "ok" if cluster.ok else "down",
        "nodes": [_node_view(node, cluster.name, now) for node in cluster.nodes()],
    }
    return json(view)


def caller_header(principal: Principal) -> str:
    """The caller as this node authenticated it, for the node a request goes on to."""
    return orjson.dumps(
        {
            "id": principal.id,
            "role": principal.role.label,
            "name": principal.name,
            "models": None if principal.models is None else list(principal.models),
            "limits": principal.limits.as_dict(),
        }
    ).decode()


def _forwarded_caller(raw: str) -> Principal:
    try:
        doc = orjson.loads(raw)
        role = Role.named(doc["role"])
        assert role is not None
        models = doc["models"]
        return Principal(
            str(doc["id"]), role, str(doc["name"]),
            None if models is None else tuple(str(m) for m in models),
            Limits(**doc["limits"]),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise Unauthenticated(f"{CALLER} from the forwarding node cannot be read") from exc


class ClusterLayer:
    """Around the app when the cluster is on: a forward from another node must
    carry the cluster's secret (its caller then comes with it); every answer
    names the node that served it."""

    def __init__(self, app: ASGIApp, cluster: Cluster, secret: str) -> None:
        self._app = app
        self._name = cluster.name.encode()
        self._secret = secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        name = self._name

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(k == NODE.encode() for k, _ in headers):
                    headers.append((NODE.encode(), name))
                message["headers"] = headers
            await send(message)

        if is_forwarded(scope):
            given = (header(scope, SECRET) or "").encode()
            if not hmac.compare_digest(given, self._secret):
                refused = Unauthenticated("a forward from another node needs the cluster's secret")
                await error_response(refused)(scope, receive, named)
                return
            raw_caller = header(scope, CALLER)
            if raw_caller is not None:
                try:
                    scope[FORWARDED_CALLER] = _forwarded_caller(raw_caller)
                except Unauthenticated as err:
                    await error_response(err)(scope, receive, named)
                    return
        await self._app(scope, receive, named)


routes = [Route("/v1/cluster", cluster_view, methods=["GET"])]


class Forwarded(Response):
    """A request answered by the node that owns what it names (a model it
    serves, a lease or a job it holds, memory placed there). When that node
    does not answer it is served by ``here``, if given (the one retry) —
    unless the request may have reached that node and is not ``idempotent``
    (a job submitted there may exist) — else answered 503."""

    def __init__(
        self,
        cluster: Cluster,
        node: NodeInfo,
        body: bytes,
        here: ASGIApp | None = None,
        idempotent: bool = True,
    ) -> None:
        super().__init__()
        self._cluster = cluster
        self._node = node
        self._body = body
        self._here = here
        self._idempotent = idempotent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent_caller = caller_header(caller(scope)) if PRINCIPAL in scope else None
        failed = await self._cluster.forward(self._node, scope, self._body, send, sent_caller)
        if failed is None:
            return
        if self._here is not None and (self._idempotent or not failed.sent):
            await self._here(scope, receive, send)
            return
        if failed.sent:
            gone = Unavailable(
                f"node {self._node.name} broke off before answering; it may have taken the "
                "request: look before you send it again"
            )
        else:
            gone = Unavailable(f"node {self._node.name} cannot be reached; retry")
        await error_response(gone)(scope, receive, send)


def _home(
    request: Request, cluster: Cluster | None, param: str, gone: Callable[[str, str], MocError]
) -> NodeInfo | None:
    """The node that holds what the path's ``param`` names (its id begins with
    the node's name, ``n2.…``); None: this one. ``gone(id, node)`` is raised
    when that node is out of the cluster; Unavailable when Redis is down."""
    object_id = request.path_params[param]
    if cluster is None or is_forwarded(request.scope):
        return None
    node, dot, _ = object_id.partition(".")
    if not dot or node == cluster.name:
        return None
    found = cluster.node(node)
    if found is not None:
        return found
    if not cluster.ok:
        raise Unavailable(f"the cluster's directory (Redis) is down: node {node} cannot be found")
    raise gone(object_id, node)


def lease_home(request: Request, cluster: Cluster | None) -> NodeInfo | None:
    """The node that holds the lease the path names; LeaseLost when that node
    is out of the cluster: its leases ended with it."""

    def lost(lease_id: str, node: str) -> MocError:
        return LeaseLost(
            f"lease {lease_id} was held on node {node}, which is gone from the cluster: its "
            "memory went with it",
            node=node,
        )

    return _home(request, cluster, "lease_id", lost)


def job_home(request: Request, cluster: Cluster | None) -> NodeInfo | None:
    """The node that holds the job the path names; Unavailable when that node
    is not up: its jobs are in its own store and go on when it comes back."""

    def away(job_id: str, node: str) -> MocError:
        return Unavailable(
            f"job {job_id} is held by node {node}, which is not up in the cluster; its jobs go "
            "on when it comes back",
            node=node,
        )

    return _home(request, cluster, "job_id", away)


def elsewhere(request: Request, cluster: Cluster | None) -> Forwarded | None:
    """A job another node holds (a bodiless request about it), answered by that node."""
    home = job_home(request, cluster)
    return None if home is None or cluster is None else Forwarded(cluster, home, b"")


async def with_the_others(
    request: Request, cluster: Cluster | None, field: str, mine: list[Any], limit: int
) -> tuple[list[Any], dict[str, str] | None]:
    """This node's listing ``mine`` with the same from every other node, newest
    first, at most ``limit``; and the headers of the answer:
    ``x-moc-nodes-missing`` names the nodes that could not be asked."""
    if cluster is None or is_forwarded(request.scope):
        return mine, None
    sent = caller_header(caller(request.scope)) if PRINCIPAL in request.scope else None
    answers, missing = await cluster.gather(request.scope, sent)
    found = list(mine)
    for raw in answers:
        with contextlib.suppress(ValueError, KeyError, TypeError):  # another version's answer
            items = orjson.loads(raw)[field]
            found.extend(i for i in items if isinstance(i, dict) and "created_at" in i)
    found.sort(key=lambda item: str(item["created_at"]), reverse=True)
    return found[:limit], {"x-moc-nodes-missing": ",".join(missing)} if missing else None


def lease_node(
    request: Request, cluster: Cluster | None, asked: str | None, nbytes: int, free_here: int
) -> NodeInfo | None:
    """Where a new lease is held: the node asked for, else this one when it has
    room, else the node with the most free memory that has room; None: here."""
    if cluster is None or is_forwarded(request.scope):
        return None
    if asked is not None and asked != cluster.name:
        found = cluster.node(asked)
        if found is None:
            raise NotFound(f"no node {asked!r} is up in the cluster", node=asked)
        return found
    if asked is not None or free_here >= nbytes:
        return None
    roomy = [
        n for n in cluster.link.reachable() if max((d.free for d in n.devices), default=0) >= nbytes
    ]
    return max(roomy, key=lambda n: (n.free, n.name)) if roomy else None
