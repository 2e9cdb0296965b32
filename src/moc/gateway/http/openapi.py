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
from moc.gateway.http.errors import ErrorKind, error_kinds
from moc.gateway.http.openapi_schemas import PRIORITY_LABELS, Schema, ref, schemas
from moc.gateway.http.sse import SSE
from moc.jobs.model import JobStatus
from moc.learning.datasets.model import Format
from moc.learning.datasets.validate import NAME_PATTERN
from moc.learning.jobs.model import INDEX_NAME_PATTERN
from moc.learning.jobs.model import Kind as LearningKind
from moc.learning.jobs.model import Status as LearningStatus
from moc.leases.validate import MAX_TOKEN
from moc.version import __version__

JSON = "application/json"
STRING = {"type": "string"}
# What a status means beyond the codes that map to it: 431 is the app's
# request-head limit, and an inference route passes a backend's own 500 back.
_ALSO = {
    431: "invalid_request: the request head is over 64 KiB or 100 headers",
    500: "(on inference routes also a backend's own 500, passed back)",
}


def _statuses() -> dict[int, list[ErrorKind]]:
    by_status: dict[int, list[ErrorKind]] = {}
    for kind in error_kinds():
        by_status.setdefault(kind.status, []).append(kind)
    return by_status


_BY_STATUS = _statuses()
ERRORS = {
    status: ", ".join(k.code for k in kinds) + (f" {_ALSO[status]}" if status in _ALSO else "")
    for status, kinds in sorted(_BY_STATUS.items())
}
ERRORS[431] = _ALSO[431]


def _content(schema: Schema, media: str = JSON) -> dict[str, Any]:
    return {media: {"schema": schema}}


def _answer(description: str, schema: Schema, **headers: bool) -> dict[str, Any]:
    """A response; ``headers`` names header components and whether each is required."""
    out: dict[str, Any] = {"description": description, "content": _content(schema)}
    if headers:
        out["headers"] = {_HEADER_NAMES[h]: _header(h, req) for h, req in headers.items()}
    return out


def _header(name: str, required: bool) -> dict[str, Any]:
    return {**_HEADERS[name], "required": required}


_HEADER_NAMES = {
    "Location": "Location",
    "RetryAfter": "Retry-After",
    "QueueMs": "x-moc-queue-ms",
    "OverheadMs": "x-moc-overhead-ms",
}
_HEADERS: dict[str, dict[str, Any]] = {
    "Location": {"description": "the new resource's path", "schema": {"type": "string"}},
    "RetryAfter": {
        "description": "whole seconds after which a retry may succeed",
        "schema": {"type": "integer", "minimum": 1},
    },
    "QueueMs": {
        "description": "milliseconds the request waited in the queue and for its model to load",
        "schema": {"type": "number", "minimum": 0},
    },
    "OverheadMs": {
        "description": "milliseconds of moc's own time (not queue, load or backend)",
        "schema": {"type": "number", "minimum": 0},
    },
}


def _errors(*statuses: int, shape: str = "Error", timed: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        headers = {"QueueMs": False, "OverheadMs": False} if timed else {}
        retrying = [k.retry_after for k in _BY_STATUS[status]]
        if any(retrying):
            # Required where every code of the status carries it, except where a
            # backend's own answer of that status may be passed back (timed).
            headers["RetryAfter"] = all(retrying) and not timed
        out[str(status)] = _answer(ERRORS[status], ref(shape), **headers)
    return out


def _op(
    summary: str,
    ok: dict[str, Any] | None,
    errors: dict[str, Any] | None = None,
    *,
    params: list[dict[str, Any]] | None = None,
    body: Schema | None = None,
    body_required: bool = True,
    status: int = 200,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            **({str(status): ok} if ok is not None else {}),  # None: moc never carries it out
            "431": _answer(ERRORS[431], ref("Error")),
            "500": _answer(ERRORS[500], ref("Error")),
            **(errors or {}),
        },
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": _content(body)}
    return op


def _path(name: str) -> dict[str, Any]:
    schema = {"type": "string", "minLength": 1}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: Schema) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


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
            "get": _op(
                "Liveness and counts",
                _answer("serving", ref("Health")),
                {"503": _answer("draining: moc is shutting down", ref("Health"))},
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {
                    "description": "Prometheus text format",
                    "content": _content({"type": "string"}, "text/plain"),
                },
                {},
            )
        },
        "/openapi.json": {
            "get": _op("This document", _answer("OpenAPI 3.1", {"type": "object"}), {})
        },
        "/v1/devices": {"get": _op("Devices", _answer("every device", ref("DeviceList")), {})},
        "/v1/devices/{device_id}": {
            "get": _op(
                "One device",
                _answer("the device", ref("Device")),
                _errors(404),
                params=[_path("device_id")],
            )
        },
    }


def _lease_paths() -> dict[str, Any]:
    lease = ref("Lease")
    lease_id = [_path("lease_id")]
    token = _query("fencing_token", {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN})
    return {
        "/v1/leases": {
            "post": _op(
                "Acquire a lease",
                _answer("granted", lease, Location=True),
                _errors(400, 404, 409, 422, 429, 503),
                body=ref("LeaseAcquire"),
                status=201,
            ),
            "get": _op(
                "Live leases",
                _answer("leases and the number waiting", ref("LeaseList")),
                _errors(),
                params=[_query("device", {"type": "string"}), _query("holder", {"type": "string"})],
            ),
        },
        "/v1/leases/{lease_id}": {
            "get": _op(
                "One live lease", _answer("the lease", lease), _errors(404), params=lease_id
            ),
            "delete": _op(
                "Release a lease",
                _answer("released", ref("LeaseReleased")),
                _errors(400, 404, 409, 410, 503),
                params=[*lease_id, token],
                body=ref("LeaseRelease"),
                body_required=False,
            ),
        },
        "/v1/leases/{lease_id}/renew": {
            "post": _op(
                "Renew a lease",
                _answer("renewed", lease),
                _errors(400, 404, 409, 410, 503),
                params=lease_id,
                body=ref("LeaseRenew"),
                body_required=False,
            )
        },
        "/v1/leases/{lease_id}/events": {
            "get": _op(
                "A lease's events as server-sent events: yield (release it by yield_by), "
                "then ended",
                _stream("the events, until the lease ends"),
                _errors(404, 410),
                params=lease_id,
            )
        },
    }


def _stream(description: str) -> dict[str, Any]:
    """A server-sent event stream: ``event:`` and ``data:`` lines, JSON in each data."""
    return {"description": description, "content": _content({"type": "string"}, SSE)}


def _index_name() -> dict[str, Any]:
    name = _path("name")
    name["schema"] = {"type": "string", "pattern": INDEX_NAME_PATTERN}
    return name


def _learning_paths() -> dict[str, Any]:
    job = ref("LearningJob")
    job_id = [_path("job_id")]
    limit = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    cancel = _op(
        "Cancel a learning job (a finished one is returned unchanged)",
        _answer("the job", job),
        _errors(404, 503),
        params=job_id,
    )
    return {
        "/v1/learning/jobs": {
            "post": _op(
                "Submit a learning job: sft, quantize or index",
                _answer("accepted", job, Location=True),
                _errors(400, 404, 409, 422, 503),
                body=ref("LearningJobRequest"),
                status=202,
            ),
            "get": _op(
                "Learning jobs, newest first",
                _answer("jobs", ref("LearningJobList")),
                _errors(400),
                params=[
                    _query("status", {"enum": [s.value for s in LearningStatus]}),
                    _query("kind", {"enum": [k.value for k in LearningKind]}),
                    _query("limit", limit),
                ],
            ),
        },
        "/v1/learning/jobs/{job_id}": {
            "get": _op("One learning job", _answer("the job", job), _errors(404), params=job_id),
            "delete": cancel,
        },
        "/v1/learning/jobs/{job_id}/cancel": {"post": cancel},
        "/v1/learning/jobs/{job_id}/events": {
            "get": _op(
                "A learning job's progress and changes of status as server-sent events",
                _stream("status, progress and checkpoint events, until the job finishes"),
                _errors(404),
                params=job_id,
            )
        },
        "/v1/indexes": {
            "get": _op("The indexes, by name", _answer("indexes", ref("IndexList")), {})
        },
        "/v1/indexes/{name}/query": {
            "post": _op(
                "The chunks of an index closest to a query",
                _answer("the top k chunks, best first", ref("IndexResults")),
                _errors(400, 404, 503),
                params=[_index_name()],
                body=ref("IndexQuery"),
            )
        },
    }


def _model_paths() -> dict[str, Any]:
    name = [_path("name")]
    return {
        "/v1/models": {
            "get": _op("The catalog", _answer("every model", ref("ModelList")), _errors())
        },
        "/v1/models/{name}": {
            "get": _op(
                "One model", _answer("the model", ref("ModelDetail")), _errors(404), params=name
            )
        },
        "/v1/models/{name}/load": {
            "post": _op(
                "Load a model; answers when it serves",
                _answer("loaded", ref("ModelDetail")),
                _errors(404, 409, 422, 503),
                params=name,
            )
        },
        "/v1/models/{name}/unload": {
            "post": _op(
                "Stop a model's runtime",
                _answer("stopped (or was not loaded)", ref("ModelUnloaded")),
                _errors(404, 503),
                params=name,
            )
        },
    }


def _job_paths() -> dict[str, Any]:
    job = ref("Job")
    job_id = [_path("job_id")]
    limit = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    return {
        "/v1/jobs": {
            "post": _op(
                "Submit an async job",
                _answer("accepted", job, Location=True),
                _errors(400, 404, 429, 503),
                body=ref("JobSubmission"),
                status=202,
            ),
            "get": _op(
                "Jobs, newest first",
                _answer("jobs", ref("JobList")),
                _errors(400),
                params=[
                    _query("status", {"enum": [s.value for s in JobStatus]}),
                    _query("model", {"type": "string"}),
                    _query("limit", limit),
                ],
            ),
        },
        "/v1/jobs/{job_id}": {
            "get": _op("One job", _answer("the job", job), _errors(404), params=job_id),
            "delete": _op(
                "Cancel a job (a finished one is returned unchanged)",
                _answer("the job", job),
                _errors(404, 503),
                params=job_id,
            ),
        },
        "/v1/stats": {"get": _op("Jobs, queues, models", _answer("stats", ref("Stats")), {})},
    }


def _dataset_paths(config: Config) -> dict[str, Any]:
    dataset = ref("Dataset")
    limit = config.learning.max_dataset_bytes
    name = {
        "name": "name",
        "in": "query",
        "required": True,
        "description": "the dataset's name (not of the form of an id: ds_ and 24 hex digits)",
        "schema": {"type": "string", "pattern": NAME_PATTERN},
    }
    fmt = _query("format", {"enum": [f.value for f in Format]})
    fmt["description"] = "what each line holds; default: told by the first line that says"
    replace = _query("replace", {"type": "boolean", "default": False})
    replace["description"] = "replace a dataset of this name that has other content"
    upload = _op(
        "Upload a dataset (a JSONL file, checked line by line; nothing is kept if a line is wrong)",
        _answer("stored", dataset, Location=True),
        _errors(400, 409, 422, 503),
        params=[name, fmt, replace],
        body={"type": "string", "format": "binary"},
        status=201,
    )
    upload["requestBody"]["description"] = (
        f"the JSONL file, at most {limit} bytes (learning.max_dataset_bytes), "
        "sent as is in any content type"
    )
    upload["requestBody"]["content"] = _content(
        {"type": "string", "format": "binary"}, "application/octet-stream"
    )
    upload["responses"]["200"] = _answer(
        "the name holds this content already: the dataset, unchanged", dataset, Location=True
    )
    key = [_path("name")]
    return {
        "/v1/datasets": {
            "post": upload,
            "get": _op("Datasets, by name", _answer("every dataset", ref("DatasetList")), {}),
        },
        "/v1/datasets/{name}": {
            "get": _op(
                "One dataset, by name or id",
                _answer("the dataset", dataset),
                _errors(404),
                params=key,
            ),
            "delete": _op(
                "Remove a dataset (refused while a learning job uses it)",
                _answer("removed", ref("DatasetRemoved")),
                _errors(404, 409, 503),
                params=key,
            ),
        },
    }


def _goal_paths() -> dict[str, Any]:
    goal = ref("Goal")
    name = [_path("name")]
    return {
        "/v1/goals": {
            "post": _op(
                "Create a goal",
                _answer("created", goal, Location=True),
                _errors(400, 409, 503),
                body=ref("GoalCreate"),
                status=201,
            ),
            "get": _op("Every goal, oldest first", _answer("goals", ref("GoalList")), {}),
        },
        "/v1/goals/{name}": {
            "get": _op("One goal", _answer("the goal", goal), _errors(404), params=name),
            "patch": _op(
                "Change a goal's weight, description or status",
                _answer("the goal as changed", goal),
                _errors(400, 404, 409, 503),
                params=name,
                body=ref("GoalUpdate"),
                body_required=False,
            ),
            "delete": _op(
                "Delete a goal",
                _answer("deleted", ref("GoalDeleted")),
                _errors(404, 503),
                params=name,
            ),
        },
    }


def _inference(
    summary: str, body: str, streams: bool, ollama: bool, answer: str | None = None
) -> dict[str, Any]:
    shape = "OllamaError" if ollama else "Error"
    backend = "OllamaError" if ollama else "BackendError"
    answer = answer or ("OllamaAnswer" if ollama else "OpenAIAnswer")
    ndjson = streams and ollama  # one JSON object a line; a failure mid-answer is an error line
    timed = {"QueueMs": False, "OverheadMs": False}
    said = "the answer (streamed when stream is true)" if streams else "the answer"
    ok = _answer(said, ref(answer), **timed)
    if ndjson:
        ok["content"]["application/x-ndjson"] = {
            "schema": {"anyOf": [ref(answer), ref("OllamaError")]}
        }
    elif streams:  # server-sent events; each data is a JSON chunk, the last [DONE]
        event = {"type": "object", "properties": {"data": STRING}, "required": ["data"]}
        ok["content"]["text/event-stream"] = {"schema": event}
    errors = _errors(400, 404, 409, 422, 429, 500, 503, 504, shape=shape, timed=True)
    for status in ("400", "404", "409", "422", "429", "500", "503", "504"):
        errors[status]["content"] = _content(ref(backend))
        if ndjson:  # a backend's error to a streamed request keeps the stream's type
            errors[status]["content"]["application/x-ndjson"] = {"schema": ref(backend)}
    for status in ("4XX", "5XX"):
        errors[status] = _answer("the backend's own error, unchanged", ref(backend), **timed)
        if ndjson:
            errors[status]["content"]["application/x-ndjson"] = {"schema": ref(backend)}
    return _op(summary, ok, errors, params=[PRIORITY_HEADER], body=ref(body))


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
                answer="OllamaEmbed",
            )
        },
        "/api/embeddings": {
            "post": _inference(
                "Ollama embeddings, the older route (no prompt: load the model)",
                "OllamaEmbeddingsRequest",
                False,
                True,
                answer="OllamaEmbeddings",
            )
        },
    }


def _ollama_paths() -> dict[str, Any]:
    return {
        "/api/tags": {"get": _op("Ollama: the catalog", _answer("models", ref("OllamaTags")))},
        "/api/ps": {"get": _op("Ollama: loaded models", _answer("models", ref("OllamaPs")))},
        "/api/show": {
            "post": _op(
                "Ollama: one model",
                _answer("the model", ref("OllamaShow")),
                _errors(400, 404, shape="OllamaError"),
                body=ref("OllamaShowRequest"),
            )
        },
        "/api/version": {
            "get": _op("Ollama API version", _answer("versions", ref("OllamaVersion")), {})
        },
        "/": {
            "get": _op(
                "Ollama's liveness probe",
                {
                    "description": "Ollama is running",
                    "content": _content({"const": "Ollama is running"}, "text/plain"),
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
    pulled = _answer("loaded; streamed (the default) as one status a line", ref("OllamaSuccess"))
    pulled["content"]["application/x-ndjson"] = {
        "schema": {"anyOf": [ref("OllamaStatus"), ref("OllamaError")]}
    }
    return {
        "/api/pull": {
            "post": _op(
                "Ollama pull: load a model moc serves (moc downloads nothing)",
                pulled,
                _errors(400, 404, 409, 422, 503, shape="OllamaError"),
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
            method: _op(
                f"Ollama {what}", None, _errors(400, 404, shape="OllamaError"), body=ref(body)
            )
        }
        for path, method, what, body in _REFUSED
    }


def document(config: Config) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "moc",
            "version": __version__,
            "description": "The ModelOps Coordinator: device memory leases, models, "
            "an OpenAI- and Ollama-compatible gateway, async jobs. "
            "Errors carry a stable code; see docs/api.md.",
        },
        "paths": {
            **_system_paths(),
            **_lease_paths(),
            **_model_paths(),
            **_job_paths(),
            **_dataset_paths(config),
            **_goal_paths(),
            **_learning_paths(),
            **_inference_paths(),
            **_ollama_paths(),
        },
        "components": {"schemas": schemas(config)},
    }


def encoded(config: Config) -> bytes:
    return orjson.dumps(document(config))
