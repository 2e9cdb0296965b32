"""Each route behind its entry in the route table (:mod:`moc.auth.routes`).

A guarded route authenticates the caller, checks its role, counts it against
its key's limits and, for an audited action, records how it ended. Handlers
read the caller with :func:`caller`; inference checks the model and charges
tokens with :func:`admit_inference`, and the answer's reported usage settles
the charge as the answer goes out.

With auth off only audited routes are wrapped (the caller is anonymous), so
the rest pay nothing.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moc.auth.principal import ANONYMOUS, Principal
from moc.auth.routes import Access
from moc.errors import Forbidden, MocError
from moc.gateway.http.errors import error_body, error_response, ollama_error_body
from moc.services import Services

PRINCIPAL = "moc.principal"
CHARGED = "moc.tokens_charged"  # tokens taken from the caller's bucket before the answer
AUDIT_OBJECT = "moc.audit_object"  # what an audited action acted on, when a handler knows better
DEFAULT_OUTPUT_TOKENS = 256  # a request that does not say how many it may generate
MAX_CAPTURE = 1 << 20  # bytes of a whole answer read for its usage


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
    return text // 4 + 1 + out


def admit_inference(scope: Scope, services: Services, model: str, doc: dict[str, Any]) -> None:
    """The caller may use ``model`` and has the tokens the request may take."""
    check_model(scope, model)
    principal = caller(scope)
    if principal.limits.tokens_per_minute is None:
        return
    estimate = estimate_tokens(doc)
    services.auth.limits.charge_tokens(principal, estimate, time.monotonic())
    scope[CHARGED] = estimate


def reported_tokens(answer: bytes) -> int | None:
    """The tokens an answer says it used: OpenAI's ``usage.total_tokens``, or
    Ollama's prompt and eval counts; for a stream, from its last line that
    carries them."""
    for line in reversed(answer.splitlines()):
        line = line.strip().removeprefix(b"data:").strip()
        if not line.startswith(b"{"):
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        usage = doc.get("usage") if isinstance(doc, dict) else None
        if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
            return int(usage["total_tokens"])
        if isinstance(doc, dict) and isinstance(doc.get("eval_count"), int):
            return int(doc.get("prompt_eval_count") or 0) + int(doc["eval_count"])
    return None


class _Answer:
    """The send side of one guarded request: the status, the rate-limit
    headers, and the bytes that may carry the usage."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]], metered: bool) -> None:
        self._send = send
        self._headers = headers
        self._metered = metered
        self.status = 0
        self.tail = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self._headers:
                message["headers"] = [*message.get("headers", ()), *self._headers]
        elif self._metered and message["type"] == "http.response.body":
            body: bytes = message.get("body", b"")
            if b"usage" in body or b"eval_count" in body:
                self.tail = (self.tail + body)[-MAX_CAPTURE:]
        await self._send(message)


async def _refuse(err: MocError, scope: Scope, receive: Receive, send: Send) -> None:
    """The error in Ollama's shape on its routes, OpenAI's elsewhere."""
    shape = ollama_error_body if scope["path"].startswith("/api/") else error_body
    await error_response(err, shape)(scope, receive, send)


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
            await self._app(scope, receive, send)
            return
        try:
            principal = await auth.authenticate(_authorization(scope), _address(scope))
            if not principal.role.allows(access.role):
                raise Forbidden(
                    f"{principal.role.label} key {principal.id} may not call "
                    f"{scope['method']} {scope['path']}: it needs the role {access.role.label}",
                    role=principal.role.label,
                    needs=access.role.label,
                )
            auth.limits.admit(principal, time.monotonic())
        except MocError as err:
            await _refuse(err, scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        try:
            await self._audited(principal, access, scope, receive, send)
        finally:
            auth.limits.done(principal)

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
                used = reported_tokens(answer.tail)
                if used is not None:
                    self._auth.limits.settle_tokens(principal, charged, used, time.monotonic())
            if access.action is not None:
                self._record(principal, access.action, scope, answer.status)

    def _record(self, principal: Principal, action: str, scope: Scope, status: int) -> None:
        params = scope.get("path_params") or {}
        obj = scope.get(AUDIT_OBJECT) or "/".join(str(v) for v in params.values()) or "-"
        result = "ok" if 0 < status < 400 else ("client_gone" if status == 0 else str(status))
        self._auth.audit.record(
            principal.id, action, obj, status, result, role=principal.role.label
        )


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def check_owner(scope: Scope, kind: str, object_id: str, owner: str) -> None:
    """Forbidden unless the caller may see and end an object owned by ``owner``."""
    principal = caller(scope)
    if not principal.owns(owner):
        raise Forbidden(
            f"{kind} {object_id} belongs to another key; key {principal.id} may see and end "
            "only its own (operators and admins: every one)",
            owner_is_caller=False,
        )


def audit_privileged(scope: Scope, services: Services, action: str, obj: str, owner: str) -> None:
    """Record an action on another caller's object (a lease ended, a job
    cancelled by an operator or admin); one's own is not audited."""
    principal = caller(scope)
    if owner != principal.id:
        role = principal.role.label
        services.auth.audit.record(principal.id, action, obj, 200, owner=owner, role=role)
