"""API keys, the caller and the audit log: /v1/keys…, /v1/whoami, /v1/audit."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moc import wire
from moc.auth import validate
from moc.auth.model import ApiKey
from moc.auth.principal import Limits, Principal
from moc.auth.roles import Role
from moc.errors import InvalidRequest
from moc.gateway.http.body import parse
from moc.gateway.http.guard import AUDIT_OBJECT, caller
from moc.gateway.http.query import whole
from moc.gateway.http.respond import json, services
from moc.gateway.http.wire import KeyCreateBody, KeyRotateBody
from moc.gateway.views import iso

_LEAP_SECOND = re.compile(r":60(?=(\.\d+)?(Z|[+-]|$))")


def _limits(limits: Limits) -> wire.KeyLimits:
    found: wire.KeyLimits = limits.as_dict()  # type: ignore[assignment]
    return found


def _role(role: Role) -> wire.RoleName:
    name: wire.RoleName = role.label  # type: ignore[assignment]
    return name


def key_view(key: ApiKey, now: float, last_used: float | None) -> wire.ApiKey:
    state = "revoked" if key.revoked_at is not None else "live" if key.live(now) else "expired"
    return {
        "id": key.id,
        "name": key.name,
        "role": _role(key.role),
        "models": None if key.models is None else list(key.models),
        "limits": _limits(key.limits),
        "created_at": iso(key.created_at),
        "expires_at": None if key.expires_at is None else iso(key.expires_at),
        "revoked_at": None if key.revoked_at is None else iso(key.revoked_at),
        "last_used_at": None if last_used is None else iso(last_used),
        "state": state,  # type: ignore[typeddict-item]
    }


def _time(field: str, text: str | None) -> float | None:
    """An ISO 8601 time (RFC 3339's too: a lowercase t or z, a leap second)."""
    if text is None:
        return None
    normal = _LEAP_SECOND.sub(":59", text.upper())
    try:
        when = datetime.fromisoformat(normal)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        raise InvalidRequest(field, "must be a time in ISO 8601", value=text) from None


async def create(request: Request) -> Response:
    s = services(request)
    body = await parse(request, KeyCreateBody)
    key, secret = s.auth.keys.create(
        validate.name(body.name),
        validate.role(body.role),
        validate.models(body.models),
        validate.limits(body.limits),
        _time("expires_at", body.expires_at),
    )
    request.scope[AUDIT_OBJECT] = key.id
    view: wire.ApiKeyCreated = {
        **key_view(key, s.clock.now(), None),
        "key": secret,
        "previous_valid_until": None,
    }
    return json(view, 201, {"location": f"/v1/keys/{key.id}"})


async def list_keys(request: Request) -> Response:
    s = services(request)
    now, used = s.clock.now(), s.auth.keys.last_used
    return json({"keys": [key_view(k, now, used.get(k.id)) for k in s.auth.keys.all()]})


async def get_key(request: Request) -> Response:
    s = services(request)
    key = s.auth.keys.get(request.path_params["key_id"])
    return json(key_view(key, s.clock.now(), s.auth.keys.last_used.get(key.id)))


async def revoke(request: Request) -> Response:
    s = services(request)
    key = s.auth.keys.revoke(request.path_params["key_id"])
    return json({"revoked": True, "key": key_view(key, s.clock.now(), None)})


async def rotate(request: Request) -> Response:
    s = services(request)
    body = await parse(request, KeyRotateBody)
    key, secret = s.auth.keys.rotate(request.path_params["key_id"], validate.grace(body.grace_s))
    view: wire.ApiKeyCreated = {
        **key_view(key, s.clock.now(), s.auth.keys.last_used.get(key.id)),
        "key": secret,
        "previous_valid_until": None if key.old_until is None else iso(key.old_until),
    }
    return json(view)


def caller_view(principal: Principal, auth_on: bool, used_today: float) -> wire.Caller:
    return {
        "id": principal.id,
        "name": principal.name,
        "role": _role(principal.role),
        "models": None if principal.models is None else list(principal.models),
        "limits": _limits(principal.limits),
        "auth": auth_on,
        "device_byte_seconds_today": round(used_today),
    }


async def whoami(request: Request) -> Response:
    s, principal = services(request), caller(request.scope)
    used = s.auth.quota.used(principal.id, s.clock.now()) if principal.id else 0.0
    return json(caller_view(principal, s.auth.enabled, used))


async def audit(request: Request) -> Response:
    s = services(request)
    params = request.query_params
    events = s.auth.audit.query(
        since=_time("since", params.get("since")),
        until=_time("until", params.get("until")),
        key_id=params.get("key_id"),
        action=params.get("action"),
        limit=whole(request, "limit", 1000, 100) or 100,
    )
    return json(
        {
            "events": [
                {
                    "seq": e.seq,
                    "at": iso(e.at),
                    "key_id": e.key_id,
                    "action": e.action,
                    "object": e.object,
                    "result": e.result,
                    "status": e.status,
                    "details": e.details,
                }
                for e in events
            ]
        }
    )


routes = [
    Route("/v1/keys", create, methods=["POST"]),
    Route("/v1/keys", list_keys, methods=["GET"]),
    Route("/v1/keys/{key_id}", get_key, methods=["GET"]),
    Route("/v1/keys/{key_id}", revoke, methods=["DELETE"]),
    Route("/v1/keys/{key_id}/rotate", rotate, methods=["POST"]),
    Route("/v1/whoami", whoami, methods=["GET"]),
    Route("/v1/audit", audit, methods=["GET"]),
]
