"""Authentication in moc's OpenAPI document: the key and audit paths, the
bearer scheme, and, with auth on, the 401/403/429 every guarded operation
may answer, each operation's least role taken from the route table."""

from __future__ import annotations

import re
from typing import Any

from moc.auth.routes import FALLBACK, HTTP, Access
from moc.gateway.http.openapi_ops import answer, failures, op, path_param, query_param
from moc.gateway.http.openapi_schemas import ref

BEARER = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key (moc_…), MOC_ADMIN_KEY, or a JWT from the configured issuer",
    }
}
_TIME = {"type": "string", "format": "date-time"}
# The table's paths as the document writes them: {name:path} is {name}.
_BY_PATH: dict[tuple[str, str], Access] = {
    (method.lower(), re.sub(r":\w+}", "}", path)): access for (method, path), access in HTTP.items()
}


def auth_paths() -> dict[str, Any]:
    key_id = [path_param("key_id")]
    return {
        "/v1/keys": {
            "post": op(
                "Make an API key; its secret is in this answer only (admin)",
                answer("made", ref("ApiKeyCreated"), Location=True),
                failures(400),
                body=ref("KeyCreate"),
                status=201,
            ),
            "get": op("Every API key, without secrets (admin)", answer("keys", ref("ApiKeyList"))),
        },
        "/v1/keys/{key_id}": {
            "get": op(
                "One API key (admin)",
                answer("the key", ref("ApiKey")),
                failures(404),
                params=key_id,
            ),
            "delete": op(
                "Revoke a key: refused from now on (admin)",
                answer("revoked", ref("ApiKeyRevoked")),
                failures(404),
                params=key_id,
            ),
        },
        "/v1/keys/{key_id}/rotate": {
            "post": op(
                "A new secret for a key; the old one works grace_s longer (admin)",
                answer("rotated", ref("ApiKeyCreated")),
                failures(400, 404),
                params=key_id,
                body=ref("KeyRotate"),
                body_required=False,
            )
        },
        "/v1/whoami": {
            "get": op("Who these credentials name, and their limits", answer("", ref("Caller")))
        },
        "/v1/audit": {
            "get": op(
                "Admin and operator actions, newest first (admin)",
                answer("events", ref("AuditList")),
                failures(400),
                params=[
                    query_param("since", _TIME),
                    query_param("until", _TIME),
                    query_param("key_id", {"type": "string"}),
                    query_param("action", {"type": "string"}),
                    query_param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                ],
            )
        },
    }


def guard(paths: dict[str, Any], metrics_open: bool) -> None:
    """Give every operation that needs credentials the bearer scheme and the
    answers a guard may give: 401, 403 and 429 (rate_limited)."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            access = _BY_PATH.get((method, path), FALLBACK)
            if access.role is None or (path == "/metrics" and metrics_open):
                continue
            shape = "OllamaError" if path.startswith("/api/") else "Error"
            operation["security"] = [{"bearer": []}]
            operation["description"] = f"Needs the role {access.role.label} or above."
            responses = operation["responses"]
            for status, response in failures(401, 403, 429, shape=shape).items():
                responses.setdefault(status, response)
