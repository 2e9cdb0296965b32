"""moc's HTTP API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Built once when the app is built, from the running configuration (TTL and
wait limits, the body limit), so the limits it states are the ones enforced.
``tests/gateway/test_openapi_document.py`` keeps its paths and the app's
routes the same; schemathesis checks moc's answers against it. moc's answers
are components generated from :mod:`moc.wire`, the native request bodies from
the pydantic models that parse them, and the error responses say which codes
each status carries, from the one mapping in :mod:`moc.gateway.http.errors`.
"""

from __future__ import annotations

from typing import Any

import orjson

from moc.config import Config
from moc.gateway.http.openapi_artifacts import artifact_paths
from moc.gateway.http.openapi_auth import BEARER, auth_paths, guard
from moc.gateway.http.openapi_learning import dataset_paths, goal_paths, learning_paths
from moc.gateway.http.openapi_ops import (
    STRING,
    answer,
    content,
    failures,
    op,
    path_param,
    query_param,
    stream,
)
from moc.gateway.http.openapi_schemas import PRIORITY_LABELS, ref, schemas
from moc.jobs.model import JobStatus
from moc.leases.validate import MAX_TOKEN
from moc.version import __version__

PRIORITY_HEADER = {
    "name": "x-moc-priority",
    "in": "header",
    "required": False,
    "description": "the request's queue; wins over a priority field in the body",
    "schema": {"enum": PRIORITY_LABELS},
}


def _system_paths() -> dict[str, Any]:
    return {
        "/health": {
            "get": op(
                "Liveness and counts",
                answer("serving", ref("Health")),
                {"503": answer("draining: moc is shutting down", ref("Health"))},
            )
        },
        "/metrics": {
            "get": op(
                "Prometheus metrics",
                {
                    "description": "Prometheus text format",
                    "content": content({"type": "string"}, "text/plain"),
                },
                {},
            )
        },
        "/openapi.json": {
            "get": op("This document", answer("OpenAPI 3.1", {"type": "object"}), {})
        },
        "/v1/devices": {"get": op("Devices", answer("every device", ref("DeviceList")), {})},
        "/v1/cluster": {
            "get": op(
                "The nodes of the cluster this node sees, their devices and models",
                answer("the cluster", ref("ClusterView")),
                {},
            )
        },
        "/v1/devices/{device_id}": {
            "get": op(
                "One device",
                answer("the device", ref("Device")),
                failures(404),
                params=[path_param("device_id")],
            )
        },
    }


def _lease_paths() -> dict[str, Any]:
    lease = ref("Lease")
    lease_id = [path_param("lease_id")]
    token = query_param("fencing_token", {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN})
    return {
        "/v1/leases": {
            "post": op(
                "Acquire a lease",
                answer("granted", lease, Location=True),
                failures(400, 404, 409, 422, 429, 503),
                body=ref("LeaseAcquire"),
                status=201,
            ),
            "get": op(
                "Live leases",
                answer("leases and the number waiting", ref("LeaseList")),
                failures(),
                params=[
                    query_param("device", {"type": "string"}),
                    query_param("holder", {"type": "string"}),
                ],
            ),
        },
        "/v1/leases/{lease_id}": {
            "get": op("One live lease", answer("the lease", lease), failures(404), params=lease_id),
            "delete": op(
                "Release a lease",
                answer("released", ref("LeaseReleased")),
                failures(400, 404, 409, 410, 503),
                params=[*lease_id, token],
                body=ref("LeaseRelease"),
                body_required=False,
            ),
        },
        "/v1/leases/{lease_id}/renew": {
            "post": op(
                "Renew a lease",
                answer("renewed", lease),
                failures(400, 404, 409, 410, 503),
                params=lease_id,
                body=ref("LeaseRenew"),
                body_required=False,
            )
        },
        "/v1/leases/{lease_id}/events": {
            "get": op(
                "A lease's events as server-sent events: yield (release it by yield_by), "
                "then ended",
                stream("the events, until the lease ends"),
                failures(404, 410),
                params=lease_id,
            )
        },
    }


def _model_paths() -> dict[str, Any]:
    name = [path_param("name")]
    return {
        "/v1/models": {
            "get": op("The catalog", answer("every model", ref("ModelList")), failures())
        },
        "/v1/models/{name}": {
            "get": op(
                "One model", answer("the model", ref("ModelDetail")), failures(404), params=name
            )
        },
        "/v1/models/{name}/load": {
            "post": op(
                "Load a model; answers when it serves",
                answer("loaded", ref("ModelDetail")),
                failures(404, 409, 422, 503),
                params=name,
            )
        },
        "/v1/models/{name}/unload": {
            "post": op(
                "Stop a model's runtime",
                answer("stopped (or was not loaded)", ref("ModelUnloaded")),
                failures(404, 503),
                params=name,
            )
        },
    }


def _job_paths() -> dict[str, Any]:
    job = ref("Job")
    job_id = [path_param("job_id")]
    limit = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    return {
        "/v1/jobs": {
            "post": op(
                "Submit an async job",
                answer("accepted", job, Location=True),
                failures(400, 404, 429, 503),
                body=ref("JobSubmission"),
                status=202,
            ),
            "get": op(
                "Jobs, newest first",
                answer("jobs", ref("JobList")),
                failures(400),
                params=[
                    query_param("status", {"enum": [s.value for s in JobStatus]}),
                    query_param("model", {"type": "string"}),
                    query_param("limit", limit),
                ],
            ),
        },
        "/v1/jobs/{job_id}": {
            "get": op("One job", answer("the job", job), failures(404), params=job_id),
            "delete": op(
                "Cancel a job (a finished one is returned unchanged)",
                answer("the job", job),
                failures(404, 503),
                params=job_id,
            ),
        },
        "/v1/stats": {"get": op("Jobs, queues, models", answer("stats", ref("Stats")), {})},
    }


def _inference(
    summary: str, body: str, streams: bool, ollama: bool, shown: str | None = None
) -> dict[str, Any]:
    shape = "OllamaError" if ollama else "Error"
    backend = "OllamaError" if ollama else "BackendError"
    shown = shown or ("OllamaAnswer" if ollama else "OpenAIAnswer")
    ndjson = streams and ollama  # one JSON object a line; a failure mid-answer is an error line
    timed = {"QueueMs": False, "OverheadMs": False}
    said = "the answer (streamed when stream is true)" if streams else "the answer"
    ok = answer(said, ref(shown), **timed)
    if ndjson:
        ok["content"]["application/x-ndjson"] = {
            "schema": {"anyOf": [ref(shown), ref("OllamaError")]}
        }
    elif streams:  # server-sent events; each data is a JSON chunk, the last [DONE]
        event = {"type": "object", "properties": {"data": STRING}, "required": ["data"]}
        ok["content"]["text/event-stream"] = {"schema": event}
    errors = failures(400, 404, 409, 422, 429, 500, 503, 504, shape=shape, timed=True)
    for status in ("400", "404", "409", "422", "429", "500", "503", "504"):
        errors[status]["content"] = content(ref(backend))
        if ndjson:  # a backend's error to a streamed request keeps the stream's type
            errors[status]["content"]["application/x-ndjson"] = {"schema": ref(backend)}
    for status in ("4XX", "5XX"):
        errors[status] = answer("the backend's own error, unchanged", ref(backend), **timed)
        if ndjson:
            errors[status]["content"]["application/x-ndjson"] = {"schema": ref(backend)}
    return op(summary, ok, errors, params=[PRIORITY_HEADER], body=ref(body))


def _inference_paths() -> dict[str, Any]:
    return {
        "/v1/chat/completions": {
            "post": _inference("Chat completion", "ChatCompletionRequest", True, False)
        },
        "/v1/completions": {"post": _inference("Completion", "CompletionRequest", True, False)},
        "/v1/embeddings": {"post": _inference("Embeddings", "EmbeddingRequest", False, False)},
        "/api/generate": {
            "post": _inference("Ollama generate", "OllamaGenerateRequest", True, True)
        },
        "/api/chat": {"post": _inference("Ollama chat", "OllamaChatRequest", True, True)},
        "/api/embed": {
            "post": _inference(
                "Ollama embed (no input: load the model)",
                "OllamaEmbedRequest",
                False,
                True,
                shown="OllamaEmbed",
            )
        },
        "/api/embeddings": {
            "post": _inference(
                "Ollama embeddings, the older route (no prompt: load the model)",
                "OllamaEmbeddingsRequest",
                False,
                True,
                shown="OllamaEmbeddings",
            )
        },
    }


def _ollama_paths() -> dict[str, Any]:
    return {
        "/api/tags": {"get": op("Ollama: the catalog", answer("models", ref("OllamaTags")))},
        "/api/ps": {"get": op("Ollama: loaded models", answer("models", ref("OllamaPs")))},
        "/api/show": {
            "post": op(
                "Ollama: one model",
                answer("the model", ref("OllamaShow")),
                failures(400, 404, shape="OllamaError"),
                body=ref("OllamaShowRequest"),
            )
        },
        "/api/version": {
            "get": op("Ollama API version", answer("versions", ref("OllamaVersion")), {})
        },
        "/": {
            "get": op(
                "Ollama's liveness probe",
                {
                    "description": "Ollama is running",
                    "content": content({"const": "Ollama is running"}, "text/plain"),
                },
                {},
            )
        },
        **_ollama_manage_paths(),
    }


def _ollama_manage_paths() -> dict[str, Any]:
    """Ollama's model management: moc's models come from its configuration, so
    pull loads a model moc serves, and the rest are refused (400), or 404 where
    the model named is not one moc serves."""
    pulled = answer("loaded; streamed (the default) as one status a line", ref("OllamaSuccess"))
    pulled["content"]["application/x-ndjson"] = {
        "schema": {"anyOf": [ref("OllamaStatus"), ref("OllamaError")]}
    }
    return {
        "/api/pull": {
            "post": op(
                "Ollama pull: load a model moc serves (moc downloads nothing)",
                pulled,
                failures(400, 404, 409, 422, 503, shape="OllamaError"),
                body=ref("OllamaPullRequest"),
            )
        },
        **_refusals(),
    }


# Ollama's management calls moc never carries out: (path, method, what, body).
_REFUSED = (
    ("/api/delete", "delete", "delete: refused (unload with keep_alive 0)", "OllamaDeleteRequest"),
    ("/api/copy", "post", "copy: refused", "OllamaCopyRequest"),
    ("/api/create", "post", "create: refused", "OllamaCreateRequest"),
    ("/api/push", "post", "push: refused", "OllamaPushRequest"),
)


def _refusals() -> dict[str, Any]:
    """An operation moc never carries out: its answers are its errors."""
    return {
        path: {
            method: op(
                f"Ollama {what}", None, failures(400, 404, shape="OllamaError"), body=ref(body)
            )
        }
        for path, method, what, body in _REFUSED
    }


def document(config: Config) -> dict[str, Any]:
    paths = {
        **_system_paths(),
        **_lease_paths(),
        **_model_paths(),
        **_job_paths(),
        **dataset_paths(config),
        **goal_paths(),
        **learning_paths(),
        **artifact_paths(),
        **auth_paths(),
        **_inference_paths(),
        **_ollama_paths(),
    }
    if config.auth.enabled:
        guard(paths, metrics_open=config.auth.metrics == "open")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "moc",
            "version": __version__,
            "description": "The ModelOps Coordinator: device memory leases, models, "
            "an OpenAI- and Ollama-compatible gateway, async jobs. "
            "Errors carry a stable code; see docs/api.md.",
        },
        "paths": paths,
        "components": {"schemas": schemas(config), "securitySchemes": BEARER},
    }


def encoded(config: Config) -> bytes:
    return orjson.dumps(document(config))
