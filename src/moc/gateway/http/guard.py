"""Each route behind its entry in the route table (:mod:`moc.auth.routes`).

A guarded route authenticates the caller, checks its role, counts it against
its key's limits and, for an audited action, records how it ended. Handlers
read the caller with :func:`caller`; inference checks the model and charges
tokens with :func:`admit_inference`, and the answer's reported usage settles
the charge as the answer goes out.

In a cluster the key is counted across the nodes too (:mod:`moc.cluster.limits`):
the admission counts and reads it in Redis in one script, the tokens are taken
there as they are charged here, and what the request held is given back when it
is done. Redis unreachable: this node's count alone.

With auth off only audited routes are wrapped (the caller is anonymous), so
the rest pay nothing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moc.auth.principal import ANONYMOUS, NOBODY, Principal
from moc.auth.quota import day_of
from moc.auth.routes import Access
from moc.cluster.forward import header
from moc.cluster.limits import Seen, SharedLimits, Spend
from moc.errors import Forbidden, MocError, RateLimited
from moc.gateway.http.errors import error_body, error_response, ollama_error_body
from moc.services import Services

PRINCIPAL = "moc.principal"
FORWARDED_CALLER = "moc.forwarded_caller"  # the caller of a forward, as its first node knew it
CHARGED = "moc.tokens_charged"  # tokens taken from the caller's bucket before the answer
USED = "moc.tokens_used"  # the tokens the answer reported it used
SHARED = "moc.shared"  # the request's count across the cluster (a _Shared)
AUDIT_OBJECT = "moc.audit_object"  # what an audited action acted on, when a handler knows better
DEFAULT_OUTPUT_TOKENS = 256  # a request that does not say how many it may generate


def caller(scope: Scope) -> Principal:
    """Who sent the request (anonymous, allowed everything, with auth off)."""
    found: Principal = scope.get(PRINCIPAL, ANONYMOUS)
    return found


def check_model(scope: Scope, model: str) -> None:
    principal = caller(scope)
    if not principal.may_use(model):
        raise Forbidden(
            f"key {principal.id} may not use model {model!r}; its models are "
            f"{', '.join(principal.models or ())}",
            model=model,
        )


def estimate_tokens(doc: dict[str, Any]) -> int:
    """What a request may cost before it runs: its text at four characters a
    token, plus what it may generate (``max_tokens``, or a default)."""
    text = 0
    for field in ("messages", "prompt", "input", "system"):
        value = doc.get(field)
        if value is not None:
            text += len(value) if isinstance(value, str) else len(orjson.dumps(value))
    out = doc.get("max_completion_tokens") or doc.get("max_tokens")
    options = doc.get("options")
    if out is None and isinstance(options, dict):
        out = options.get("num_predict")
    if not isinstance(out, int) or out < 0:
        out = 0 if "input" in doc else DEFAULT_OUTPUT_TOKENS
    n = doc.get("n")
    choices = n if isinstance(n, int) and 1 <= n <= 128 else 1  # each choice is asked for
    return (text // 4 + 1 + out) * choices


@dataclass
class _Shared:
    """One request's count across the cluster: what its admission counted and
    read in Redis, and the tokens it took there."""

    limits: SharedLimits
    seen: Seen | None
    spent: Spend | None = None


def admit_inference(scope: Scope, services: Services, model: str, doc: dict[str, Any]) -> None:
    """The caller may use ``model`` and has the tokens the request may take,
    here and, in a cluster, across the nodes as last read."""
    check_model(scope, model)
    principal = caller(scope)
    per_minute = principal.limits.tokens_per_minute
    if per_minute is None:
        return
    estimate = estimate_tokens(doc)
    now = time.monotonic()
    shared: _Shared | None = scope.get(SHARED)
    if shared is None or shared.seen is None:  # not in a cluster, or Redis did not answer
        scope[CHARGED] = services.auth.limits.charge_tokens(principal, estimate, now)
        return
    left = shared.limits.tokens_left(principal.id, shared.seen, per_minute, now)
    charged = scope[CHARGED] = services.auth.limits.charge_tokens(principal, estimate, now, left)
    if charged:
        shared.spent = shared.limits.spend(principal.id, per_minute, charged)


# A usage object, with one level of objects inside (prompt_tokens_details).
_USAGE = re.compile(rb'"usage"\s*:\s*(\{(?:[^{}]|\{[^{}]*\})*\})')
_OLLAMA_COUNTS = re.compile(rb'"(prompt_eval_count|eval_count)"\s*:\s*(\d+)')


def reported_tokens(answer: bytes) -> int | None:
    """The tokens an answer says it used: the last ``usage.total_tokens``
    (OpenAI's, whole or streamed), else the last Ollama prompt and eval counts."""
    for found in reversed(_USAGE.findall(answer)):
        try:
            usage = orjson.loads(found)
        except orjson.JSONDecodeError:
            continue
        if isinstance(usage.get("total_tokens"), int):
            return int(usage["total_tokens"])
    counts = {name: int(value) for name, value in _OLLAMA_COUNTS.findall(answer)}
    if b"eval_count" in counts:
        return counts.get(b"prompt_eval_count", 0) + counts[b"eval_count"]
    return None


class _Answer:
    """The send side of one guarded request: the status, the rate-limit
    headers, and the bytes that may carry the usage: the stream's last
    ``TAIL`` bytes, and the place of the last chunk that names a usage (a
    whole answer may write it before a long ``data``)."""

    TAIL = 8192

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]], metered: bool) -> None:
        self._send = send
        self._headers = headers
        self._metered = metered
        self.status = 0
        self.location = ""  # a made resource's path, which names it for the audit log
        self.tail = b""
        self.named = b""

    @property
    def usage_bytes(self) -> bytes:
        return self.named + b"\n" + self.tail

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name == b"location":
                    self.location = bytes(value).decode("latin-1")
            if self._headers:
                message["headers"] = [*message.get("headers", ()), *self._headers]
        elif self._metered and message["type"] == "http.response.body":
            body: bytes = message.get("body", b"")
            at = max(body.rfind(b'"usage"'), body.rfind(b'"prompt_eval_count"'))
            if at >= 0:
                self.named = body[at : at + 1024]
            self.tail = (self.tail + body)[-self.TAIL :]
        await self._send(message)


class Guard:
    """A route's ASGI app behind its access, one per route and method set."""

    def __init__(self, app: ASGIApp, accesses: dict[str, Access], services: Services) -> None:
        self._app = app
        self._accesses = accesses
        self._s = services
        self._auth = services.auth

    def _access(self, scope: Scope) -> Access:
        method = scope["method"]
        return self._accesses["GET" if method == "HEAD" else method]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        access = self._access(scope)
        auth = self._auth
        if not auth.enabled:
            await self._audited(ANONYMOUS, access, scope, receive, send)
            return
        if access.role is None:
            scope[PRINCIPAL] = NOBODY  # open to all: the caller is allowed nothing more
            await self._app(scope, receive, send)
            return
        principal: Principal | None = scope.get(FORWARDED_CALLER)
        counted = principal is None  # a forward was counted by the node it came through
        try:
            if principal is None:
                principal = await auth.authenticate(header(scope, "authorization"), _address(scope))
            if not principal.role.allows(access.role):
                raise Forbidden(
                    f"{principal.role.label} key {principal.id} may not call "
                    f"{scope['method']} {scope['path']}: it needs the role {access.role.label}",
                    role=principal.role.label,
                    needs=access.role.label,
                )
            if counted:
                auth.limits.admit(principal, time.monotonic())
            try:
                await self._shared_admit(principal, access, scope, counted)
            except BaseException:  # refused, or cut off: nothing of it stays counted here
                if counted:
                    auth.limits.refund(principal, time.monotonic())
                raise
        except MocError as err:
            await self._refuse(err, principal, access, scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        if access.owned and scope["method"] not in ("GET", "HEAD"):
            send = self._published_first(send)
        try:
            await self._audited(principal, access, scope, receive, send)
        finally:
            if counted:
                auth.limits.done(principal)
            await self._shared_done(principal, scope)

    async def _shared_admit(
        self, principal: Principal, access: Access, scope: Scope, counted: bool
    ) -> None:
        """In a cluster, the key's limits across every node, in Redis: requests
        per minute and in flight counted where the request came in, and, before
        what may take tokens or a lease (a POST), the key's token bucket and its
        device use on the other nodes read where it is served. RateLimited when
        the cluster is over a limit; nothing when Redis cannot be asked."""
        cluster = self._s.cluster
        if cluster is None or not cluster.ok:
            return
        limits, post = principal.limits, scope["method"] == "POST"
        per_minute = limits.requests_per_minute if counted else None
        at_once = limits.concurrent_requests if counted else None
        tokens = limits.tokens_per_minute if post else None
        device = post and access.owned and limits.device_byte_seconds_per_day is not None
        if per_minute is None and at_once is None and tokens is None and not device:
            return
        seen = await cluster.limits.admit(
            principal.id,
            requests_per_minute=per_minute,
            concurrent_requests=at_once,
            tokens_per_minute=tokens,
            device_day=day_of(self._s.clock.now())[0] if device else None,
        )
        scope[SHARED] = _Shared(cluster.limits, seen)
        if seen is not None and seen.device is not None:
            self._auth.quota.seen_elsewhere(principal.id, seen.device, self._s.clock.now())

    async def _shared_done(self, principal: Principal, scope: Scope) -> None:
        """Give back what the request held across the cluster: its place in
        flight, the tokens it took but did not use."""
        shared: _Shared | None = scope.get(SHARED)
        if shared is not None:
            charged, used = scope.get(CHARGED, 0), scope.get(USED)
            give_back = 0 if used is None else charged - used
            await shared.limits.finish(principal.id, shared.seen, shared.spent, give_back)

    def _published_first(self, send: Send) -> Send:
        """``send``, but in a cluster a request that may have changed a lease
        (or a job) publishes this node's device use before its answer goes
        out: the caller's next request, to any node, counts it."""
        cluster = self._s.cluster
        if cluster is None:
            return send

        async def published_first(message: Message) -> None:
            if message["type"] == "http.response.start" and cluster.ok:
                await cluster.limits.publish()
            await send(message)

        return published_first

    async def _refuse(
        self,
        err: MocError,
        principal: Principal | None,
        access: Access,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """The refusal in Ollama's shape on its routes, OpenAI's elsewhere; a
        known caller's refused attempt at an audited action is recorded, and a
        429 carries the key's rate-limit headers."""
        self._s.metrics.auth_refusals.labels(err.code).inc()
        shape = ollama_error_body if scope["path"].startswith("/api/") else error_body
        response = error_response(err, shape)
        if principal is not None:
            if isinstance(err, RateLimited):
                response.raw_headers.extend(self._auth.limits.headers(principal, time.monotonic()))
            if access.action is not None:
                self._record(principal, access.action, scope, response.status_code)
        await response(scope, receive, send)

    async def _audited(
        self, principal: Principal, access: Access, scope: Scope, receive: Receive, send: Send
    ) -> None:
        limits = principal.limits
        metered = limits.tokens_per_minute is not None
        if access.action is None and not metered and limits.requests_per_minute is None:
            await self._app(scope, receive, send)
            return
        now = time.monotonic()
        answer = _Answer(send, self._auth.limits.headers(principal, now), metered)
        try:
            await self._app(scope, receive, answer)
        finally:
            charged = scope.get(CHARGED)
            if charged is not None:
                used = reported_tokens(answer.usage_bytes)
                if used is not None:
                    scope[USED] = used
                    self._auth.limits.settle_tokens(principal, charged, used, time.monotonic())
            if access.action is not None:
                self._record(principal, access.action, scope, answer.status, answer.location)

    def _record(
        self, principal: Principal, action: str, scope: Scope, status: int, location: str = ""
    ) -> None:
        """What it acted on: as the handler named it, else the path's
        parameters, the made resource's name, or the ``name`` it was asked for."""
        params = scope.get("path_params") or {}
        asked = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("name", [""])[0]
        obj = (
            scope.get(AUDIT_OBJECT)
            or "/".join(str(v) for v in params.values())
            or location.rsplit("/", 1)[-1]
            or asked
            or "-"
        )
        result = "ok" if 0 < status < 400 else ("client_gone" if status == 0 else str(status))
        self._auth.audit.record(
            principal.id, action, obj, status, result, role=principal.role.label
        )


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def check_owner(scope: Scope, kind: str, object_id: str, owner: str) -> None:
    """Forbidden unless the caller may see and end an object owned by ``owner``."""
    caller(scope).check_owns(kind, object_id, owner)


def audit_privileged(scope: Scope, services: Services, action: str, obj: str, owner: str) -> None:
    """Record an action on another caller's object; one's own is not audited."""
    services.auth.audit.on_behalf(caller(scope), action, obj, owner)
