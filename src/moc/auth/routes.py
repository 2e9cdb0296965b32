"""The one table of who may call what: every HTTP route and every gRPC method,
the least role it needs, and the action the audit log records it as.

A route missing here is a startup error (:func:`access_for` raises), so a new
route cannot be served without a decision; ``tests/integration/test_auth.py``
walks this table (HTTP and gRPC) against a running daemon for every role.

``None`` as the role means open to anyone, without credentials: only health
and the API description. ``/metrics`` follows ``auth.metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

from moc.auth.roles import Role

V, U, OP, A = Role.VIEWER, Role.USER, Role.OPERATOR, Role.ADMIN


@dataclass(frozen=True)
class Access:
    role: Role | None  # the least role allowed; None: open
    action: str | None = None  # recorded in the audit log as this, when set
    owned: bool = False  # acts on one caller's own objects (leases, jobs)


OPEN = Access(None)

# (method, path as the router declares it) → access. HEAD is served as GET.
HTTP: dict[tuple[str, str], Access] = {
    # open
    ("GET", "/health"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/"): OPEN,
    ("GET", "/metrics"): Access(V),  # or open, by auth.metrics
    # reading: viewer
    ("GET", "/v1/devices"): Access(V),
    ("GET", "/v1/devices/{device_id}"): Access(V),
    ("GET", "/v1/models"): Access(V),
    ("GET", "/v1/models/{name:path}"): Access(V),
    ("GET", "/v1/stats"): Access(V),
    ("GET", "/api/tags"): Access(V),
    ("GET", "/api/ps"): Access(V),
    ("POST", "/api/show"): Access(V),
    ("GET", "/api/version"): Access(V),
    ("GET", "/v1/adapters"): Access(V),
    ("GET", "/v1/artifacts"): Access(V),
    ("GET", "/v1/artifacts/{name}"): Access(V),
    ("GET", "/v1/indexes"): Access(V),
    ("GET", "/v1/datasets"): Access(V),
    ("GET", "/v1/datasets/{name}"): Access(V),
    ("GET", "/v1/goals"): Access(V),
    ("GET", "/v1/goals/{name}"): Access(V),
    ("GET", "/v1/learning/jobs"): Access(V),
    ("GET", "/v1/learning/jobs/{job_id}"): Access(V),
    ("GET", "/v1/learning/jobs/{job_id}/events"): Access(V),
    ("GET", "/v1/signing-keys"): Access(V),
    ("GET", "/v1/signing-keys/{name}"): Access(V),
    ("GET", "/v1/whoami"): Access(V),
    ("GET", "/v1/cluster"): Access(V),
    # inference, own leases and jobs: user
    ("POST", "/v1/chat/completions"): Access(U),
    ("POST", "/v1/completions"): Access(U),
    ("POST", "/v1/embeddings"): Access(U),
    ("POST", "/api/generate"): Access(U),
    ("POST", "/api/chat"): Access(U),
    ("POST", "/api/embed"): Access(U),
    ("POST", "/api/embeddings"): Access(U),
    ("POST", "/v1/indexes/{name}/query"): Access(U),
    ("POST", "/v1/leases"): Access(U, owned=True),
    ("GET", "/v1/leases"): Access(U, owned=True),
    ("GET", "/v1/leases/{lease_id}"): Access(U, owned=True),
    ("DELETE", "/v1/leases/{lease_id}"): Access(U, owned=True),
    ("POST", "/v1/leases/{lease_id}/renew"): Access(U, owned=True),
    ("GET", "/v1/leases/{lease_id}/events"): Access(U, owned=True),
    ("POST", "/v1/jobs"): Access(U, owned=True),
    ("GET", "/v1/jobs"): Access(U, owned=True),
    ("GET", "/v1/jobs/{job_id}"): Access(U, owned=True),
    ("DELETE", "/v1/jobs/{job_id}"): Access(U, owned=True),
    # models, learning, artifacts: operator
    ("POST", "/v1/models/{name:path}/load"): Access(OP, "model.load"),
    ("POST", "/v1/models/{name:path}/unload"): Access(OP, "model.unload"),
    ("POST", "/v1/datasets"): Access(OP, "dataset.add"),
    ("DELETE", "/v1/datasets/{name}"): Access(OP, "dataset.remove"),
    ("POST", "/v1/goals"): Access(OP, "goal.create"),
    ("PATCH", "/v1/goals/{name}"): Access(OP, "goal.update"),
    ("DELETE", "/v1/goals/{name}"): Access(OP, "goal.delete"),
    ("POST", "/v1/learning/jobs"): Access(OP, "learning.submit"),
    ("DELETE", "/v1/learning/jobs/{job_id}"): Access(OP, "learning.cancel"),
    ("POST", "/v1/learning/jobs/{job_id}/cancel"): Access(OP, "learning.cancel"),
    ("POST", "/v1/artifacts"): Access(OP, "artifact.add"),
    ("POST", "/v1/artifacts/import"): Access(OP, "artifact.import"),
    ("DELETE", "/v1/artifacts/{name}"): Access(OP, "artifact.remove"),
    ("POST", "/v1/artifacts/{name}/verify"): Access(OP, "artifact.verify"),
    ("GET", "/v1/artifacts/{name}/export"): Access(OP, "artifact.export"),
    ("POST", "/v1/signing-keys"): Access(OP, "signing_key.create"),
    ("POST", "/api/pull"): Access(OP, "model.pull"),
    ("DELETE", "/api/delete"): Access(OP, "model.delete"),
    ("POST", "/api/copy"): Access(OP, "model.copy"),
    ("POST", "/api/create"): Access(OP, "model.create"),
    ("POST", "/api/push"): Access(OP, "model.push"),
    # keys and the audit log: admin
    ("POST", "/v1/keys"): Access(A, "key.create"),
    ("GET", "/v1/keys"): Access(A),
    ("GET", "/v1/keys/{key_id}"): Access(A),
    ("DELETE", "/v1/keys/{key_id}"): Access(A, "key.revoke"),
    ("POST", "/v1/keys/{key_id}/rotate"): Access(A, "key.rotate"),
    ("GET", "/v1/audit"): Access(A),
}

# Any /api/… path no route serves: answered with Ollama's 404 to a viewer.
FALLBACK = Access(V)

# gRPC methods of modelops.ModelOps; the standard health and reflection
# services are open.
GRPC: dict[str, Access] = {
    "AcquireGpuLease": Access(U, owned=True),
    "RenewGpuLease": Access(U, owned=True),
    "ReleaseGpuLease": Access(U, owned=True),
    "GetHealth": Access(V),
}


class UnlistedRoute(LookupError):
    """A route the table does not name."""


def access_for(method: str, path: str) -> Access:
    if path == "/api/{rest:path}":
        return FALLBACK
    found = HTTP.get(("GET" if method == "HEAD" else method, path))
    if found is None:
        raise UnlistedRoute(f"{method} {path} is not in moc.auth.routes.HTTP")
    return found
