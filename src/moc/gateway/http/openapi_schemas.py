"""The JSON Schemas of moc's HTTP API, for the OpenAPI document.

Each schema follows the code that reads or writes that shape: request bodies
the wire models and :mod:`moc.leases.validate` (limits from the same
constants and the running configuration), responses the views in
:mod:`moc.gateway.views` and the routes that build them.
"""

from __future__ import annotations

from typing import Any

from moc.config import Config
from moc.jobs.model import MAX_METADATA, JobStatus
from moc.leases import validate
from moc.leases.model import PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN
from moc.scheduler.waiting import Priority

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}
TIME: Schema = {"type": "string", "description": "UTC, ISO 8601 with milliseconds"}
PRIORITY_LABELS = [p.label for p in Priority]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _given(field: str, schema: Schema) -> Schema:
    """The object has ``field``, and it matches ``schema``."""
    return {"required": [field], "properties": {field: schema}}


def closed(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """An object with exactly these properties (all present unless ``required`` says)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _errors() -> dict[str, Schema]:
    return {
        "Error": closed(
            {
                "error": closed(
                    {
                        "message": STR,
                        "type": {
                            "enum": ["invalid_request_error", "rate_limit_error", "server_error"]
                        },
                        "code": {"type": "string", "description": "stable; see docs/api.md"},
                        "param": nullable(STR),
                        "src": {"const": "moc"},
                        "details": OBJ,
                    }
                )
            }
        ),
        "OllamaError": {
            "type": "object",
            "description": "Ollama's shape; moc's own errors add code, src and details",
            "properties": {"error": STR, "code": STR, "src": {"const": "moc"}, "details": OBJ},
            "required": ["error"],
        },
        "BackendError": {
            "description": "moc's envelope, or a backend's own error passed back unchanged",
            "anyOf": [ref("Error"), {"type": "object", "required": ["error"]}],
        },
    }


def _system() -> dict[str, Schema]:
    count = {"type": "integer", "minimum": 0}
    return {
        "Health": closed(
            {
                "status": {"enum": ["ok", "draining"]},
                "version": STR,
                "uptime_s": NUM,
                "devices": count,
                "leases": count,
                "waiting": count,
            }
        ),
        "Device": closed(
            {
                "id": STR,
                "kind": {"type": "string", "description": "nvidia or host"},
                "name": STR,
                "uuid": nullable(STR),
                "total_bytes": INT,
                "capacity_bytes": INT,
                "held_bytes": INT,
                "observed_bytes": INT,
                "reading": {
                    "enum": ["ok", "stale"],
                    "description": "stale: the last reading failed; observed and free are older",
                },
                "read_error": nullable(STR),
                "free_bytes": INT,
                "leases": count,
                "reservations": count,
            }
        ),
        "DeviceList": closed({"devices": {"type": "array", "items": ref("Device")}}),
    }


def _leases(config: Config) -> dict[str, Schema]:
    limits = config.leases
    ttl = {"type": "number", "minimum": 1, "maximum": limits.max_ttl_s}
    token = {"type": "integer", "minimum": 0}
    lease = closed(
        {
            "id": STR,
            "device": STR,
            "bytes": INT,
            "holder": STR,
            "pid": nullable(INT),
            "priority": INT,
            "preemptible": BOOL,
            "fencing_token": INT,
            "ttl_s": NUM,
            "created_at": TIME,
            "expires_at": TIME,
            "expires_in_s": NUM,
            "used_bytes": nullable(INT),
            "over_limit": BOOL,
        }
    )
    acquire = closed(
        {
            "bytes": {"type": "integer", "minimum": 1, "maximum": validate.MAX_BYTES},
            "mb": {
                "type": "number",
                "minimum": validate.MIN_MB,
                "maximum": validate.MAX_BYTES // validate.MIB,
            },
            "device": {"type": "string", "minLength": 1, "description": "default: best fit"},
            "ttl_s": {**ttl, "default": limits.default_ttl_s},
            "priority": {
                "type": "integer",
                "minimum": PRIORITY_MIN,
                "maximum": PRIORITY_MAX,
                "default": PRIORITY_DEFAULT,
            },
            "holder": {"type": "string", "maxLength": validate.MAX_HOLDER},
            "pid": {"type": "integer", "minimum": 1, "maximum": validate.MAX_PID},
            "wait_s": {"type": "number", "minimum": 0, "maximum": limits.max_wait_s},
        },
        required=[],
    )
    # moc reads null as "not given" in every optional field of a lease body.
    acquire["properties"] = {k: nullable(v) for k, v in acquire["properties"].items()}
    acquire["properties"]["preemptible"] = BOOL
    number = {"type": "number"}
    acquire["oneOf"] = [  # exactly one of bytes and mb, as a number (null is not given)
        {**_given("bytes", number), "not": _given("mb", number)},
        {**_given("mb", number), "not": _given("bytes", number)},
    ]
    return {
        "Lease": lease,
        "LeaseList": closed(
            {"leases": {"type": "array", "items": ref("Lease")}, "waiting": {"type": "integer"}}
        ),
        "LeaseReleased": closed({"released": {"const": True}, "lease": ref("Lease")}),
        "LeaseAcquire": acquire,
        "LeaseRenew": closed(
            {"ttl_s": nullable(ttl), "fencing_token": nullable(token)}, required=[]
        ),
        "LeaseRelease": closed({"fencing_token": nullable(token)}, required=[]),
    }


def _models() -> dict[str, Schema]:
    seconds = nullable(NUM)
    model = closed(
        {
            "id": STR,
            "object": {"const": "model"},
            "created": INT,
            "owned_by": {"const": "moc"},
            "backend": {"enum": ["llamacpp", "openai", "ollama", "vllm"]},
            "state": {
                "enum": [
                    "stopped",
                    "starting",
                    "ready",
                    "stopping",
                    "backoff",
                    "failed",
                    "degraded",
                    "remote",
                ]
            },
            "device": nullable(STR),
            "pid": nullable(INT),
            "estimated_bytes": nullable(INT),
            "reserved_bytes": nullable(INT),
            "measured_bytes": nullable(INT),
            "in_flight": INT,
            "pinned": BOOL,
            "keep_alive_s": NUM,
            "unload_in_s": seconds,
            "load_s": seconds,
            "runtime_start_s": seconds,
            "failures": INT,
            "last_error": nullable(STR),
        }
    )
    size = closed(
        {
            "bytes": INT,
            "source": {"enum": ["configured", "measured", "estimated"]},
            "estimate": closed(
                {
                    "weights_bytes": INT,
                    "kv_cache_bytes": INT,
                    "compute_bytes": INT,
                    "runtime_bytes": INT,
                    "total_bytes": INT,
                }
            ),
            "measured_bytes": nullable(INT),
            "device_kind": STR,
        }
    )
    detail_fields = {
        "spec": {"type": "object", "description": "the model's configuration"},
        "size": nullable(ref("ModelSize")),
        "size_error": nullable(STR),
    }
    fields = model["properties"]
    return {
        "Model": model,
        "ModelSize": size,
        "ModelDetail": closed({**fields, **detail_fields}),
        "ModelUnloaded": closed({**fields, **detail_fields, "unloaded": BOOL}),
        "ModelList": closed(
            {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}}
        ),
    }


def _jobs() -> dict[str, Schema]:
    statuses = [s.value for s in JobStatus]
    priority = {"enum": PRIORITY_LABELS}
    job = closed(
        {
            "job_id": STR,
            "object": {"const": "job"},
            "model": STR,
            "priority": priority,
            "status": {"enum": statuses},
            "metadata": OBJ,
            "attempts": INT,
            "output": nullable(STR),
            "result": nullable(OBJ),
            "error": nullable(OBJ),
            "created_at": TIME,
            "queued_at": nullable(TIME),
            "started_at": nullable(TIME),
            "finished_at": nullable(TIME),
        }
    )
    submission = closed(
        {
            "model": {"type": "string", "minLength": 1, "maxLength": 128},
            "prompt": STR,
            "messages": {"type": "array", "minItems": 1, "items": OBJ},
            "priority": {**priority, "default": "normal"},
            "metadata": {
                "type": "object",
                "description": f"at most {MAX_METADATA} bytes as JSON; "
                "integers here, in messages and in options fit in 64 bits",
            },
            "options": {
                "type": "object",
                "description": "OpenAI fields passed to the backend (max_tokens, temperature, …)",
                "propertyNames": {"not": {"enum": ["model", "messages", "stream"]}},
            },
        },
        required=["model"],
    )
    submission["oneOf"] = [
        {"required": ["prompt"], "not": {"required": ["messages"]}},
        {"required": ["messages"], "not": {"required": ["prompt"]}},
    ]
    by_priority = {
        "type": "object",
        "properties": dict.fromkeys(PRIORITY_LABELS, OBJ),
        "required": PRIORITY_LABELS,
    }
    return {
        "Job": job,
        "JobList": closed({"object": {"const": "list"}, "data": {"type": "array", "items": job}}),
        "JobSubmission": submission,
        "Stats": closed(
            {
                "jobs": closed({"total": INT, "by_status": OBJ, "by_priority": by_priority}),
                "queue": closed(
                    {
                        "waiting": closed(dict.fromkeys(PRIORITY_LABELS, INT)),
                        "in_flight": INT,
                    }
                ),
                "models": closed(
                    {
                        "loaded": {
                            "type": "array",
                            "items": closed(
                                {
                                    "model": STR,
                                    "device": nullable(STR),
                                    "reserved_bytes": INT,
                                    "in_flight": INT,
                                    "waiting": INT,
                                }
                            ),
                        },
                        "catalog": INT,
                    }
                ),
                "devices": {"type": "array", "items": ref("Device")},
            }
        ),
    }


def _openai() -> dict[str, Schema]:
    """What moc checks of an OpenAI request; the rest goes to the backend as sent."""
    common = {
        "model": {"type": "string", "minLength": 1},
        "stream": BOOL,
        "priority": {"enum": PRIORITY_LABELS, "description": "x-moc-priority wins over it"},
    }
    message = {
        "type": "object",
        "properties": {"role": STR, "content": nullable({"type": ["string", "array"]})},
        "required": ["role", "content"],
    }

    def request(field: str, schema: Schema, stream: bool = True) -> Schema:
        fields = {**common, field: schema}
        if not stream:
            fields["stream"] = {"const": False}
        return {"type": "object", "properties": fields, "required": ["model", field]}

    text = {"anyOf": [STR, {"type": "array", "items": STR, "minItems": 1}]}
    return {
        "ChatCompletionRequest": request(
            "messages", {"type": "array", "minItems": 1, "items": message}
        ),
        "CompletionRequest": request("prompt", text),
        "EmbeddingRequest": request("input", text, stream=False),
        "OpenAIAnswer": {"type": "object", "description": "the backend's answer, unchanged"},
    }


def _ollama() -> dict[str, Schema]:
    details = closed(
        {
            "parent_model": STR,
            "format": STR,
            "family": STR,
            "families": nullable({"type": "array", "items": STR}),
            "parameter_size": STR,
            "quantization_level": STR,
        }
    )
    listed = {
        "name": STR,
        "model": STR,
        "modified_at": STR,
        "size": INT,
        "digest": STR,
        "details": ref("OllamaDetails"),
    }
    running = {
        **{k: v for k, v in listed.items() if k != "modified_at"},
        "expires_at": STR,
        "size_vram": INT,
        "context_length": INT,
    }
    inference = {
        "model": {"type": "string", "minLength": 1},
        "stream": {**BOOL, "default": True},
        "keep_alive": {"description": "0 with an empty prompt unloads the model"},
        "options": {
            "type": "object",
            "properties": {"num_predict": {"type": "integer", "description": "<0: no limit"}},
        },
        "format": {"anyOf": [{"enum": ["json", "", None]}, OBJ]},
        "priority": {"enum": PRIORITY_LABELS},
    }
    return {
        "OllamaDetails": details,
        "OllamaTags": closed({"models": {"type": "array", "items": closed(listed)}}),
        "OllamaPs": closed({"models": {"type": "array", "items": closed(running)}}),
        "OllamaShowRequest": {
            "type": "object",
            "properties": {"model": {"type": "string", "minLength": 1}, "name": STR},
            "required": ["model"],
        },
        "OllamaShow": closed(
            {
                "modelfile": STR,
                "parameters": STR,
                "template": STR,
                "details": ref("OllamaDetails"),
                "model_info": OBJ,
                "capabilities": {"type": "array", "items": STR},
                "modified_at": STR,
            }
        ),
        "OllamaVersion": closed({"version": STR, "moc_version": STR}),
        "OllamaGenerateRequest": {
            "type": "object",
            "properties": {
                **inference,
                "prompt": {"type": "string", "description": "empty: load the model"},
                "system": STR,
                "raw": BOOL,
                "suffix": STR,
            },
            "required": ["model"],
        },
        "OllamaChatRequest": {
            "type": "object",
            "properties": {
                **inference,
                "messages": {
                    "type": "array",
                    "description": "empty: load the model",
                    "items": {
                        "type": "object",
                        "properties": {"role": STR, "content": nullable(STR)},
                        "required": ["role"],
                    },
                },
                "tools": {"type": "array"},
            },
            "required": ["model"],
        },
        "OllamaAnswer": {
            "type": "object",
            "description": "one answer, or the load/unload acknowledgement",
            "properties": {
                "model": STR,
                "created_at": STR,
                "response": STR,
                "message": OBJ,
                "done": BOOL,
                "done_reason": STR,
            },
            "required": ["model", "created_at", "done"],
        },
    }


def schemas(config: Config) -> dict[str, Schema]:
    return {
        **_errors(),
        **_system(),
        **_leases(config),
        **_models(),
        **_jobs(),
        **_openai(),
        **_ollama(),
    }
