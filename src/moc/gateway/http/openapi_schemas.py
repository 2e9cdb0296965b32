"""The JSON Schemas of moc's HTTP API, for the OpenAPI document.

moc's own answers are generated from :mod:`moc.wire`
(:mod:`moc.gateway.http.openapi_answers`), and the native API's request
bodies from the pydantic models that parse them, with the configured limits
(:mod:`moc.gateway.http.openapi_requests`). Written here are the parts of
the OpenAI and Ollama requests moc checks before passing them on, and the
answers moc passes back from a backend unchanged.
"""

from __future__ import annotations

from typing import Any

from moc.config import Config
from moc.dispatch.request import MAX_CHOICES
from moc.gateway.http.openapi_answers import answers
from moc.gateway.http.openapi_requests import requests
from moc.scheduler.waiting import Priority

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
OBJ: Schema = {"type": "object"}
PRIORITY_LABELS = [p.label for p in Priority]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def closed(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """An object with exactly these properties (all present unless ``required`` says)."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _backend_error() -> dict[str, Schema]:
    return {
        "BackendError": {
            "description": "moc's envelope, or a backend's own error passed back unchanged",
            "anyOf": [ref("Error"), {"type": "object", "required": ["error"]}],
        },
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

    choices = {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_CHOICES,
        "default": 1,
        "description": "choices asked for, each a request of its own; 1 when stream is true",
    }
    one_when_streamed = {  # moc does not stream several choices
        "if": {"required": ["stream"], "properties": {"stream": {"const": True}}},
        "then": {"properties": {"n": {"const": 1}}},
    }

    def request(field: str, schema: Schema, stream: bool = True) -> Schema:
        fields = {**common, field: schema}
        if not stream:
            fields["stream"] = {"const": False}
        return {"type": "object", "properties": fields, "required": ["model", field]}

    def choosing(field: str, schema: Schema) -> Schema:
        out = request(field, schema)
        out["properties"]["n"] = choices
        return {**out, **one_when_streamed}

    text = {"anyOf": [STR, {"type": "array", "items": STR, "minItems": 1}]}
    return {
        "ChatCompletionRequest": choosing(
            "messages", {"type": "array", "minItems": 1, "items": message}
        ),
        "CompletionRequest": choosing("prompt", text),
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


NAME: Schema = {"type": "string", "minLength": 1}
NANOSECONDS: Schema = {"type": "integer", "minimum": 0, "description": "nanoseconds"}
VECTOR: Schema = {"type": "array", "items": NUM}


def _ollama_embeddings() -> dict[str, Schema]:
    """/api/embed and the older /api/embeddings; no text loads the model."""
    common = {
        "keep_alive": {"description": "0 with no text unloads the model"},
        "options": {**OBJ, "description": "accepted; embeddings take no sampling options"},
        "priority": {"enum": PRIORITY_LABELS, "description": "x-moc-priority wins over it"},
    }
    return {
        "OllamaEmbedRequest": {
            "type": "object",
            "properties": {
                "model": NAME,
                "input": {
                    "anyOf": [STR, {"type": "array", "items": STR}],
                    "description": "the texts; empty (or none): load the model",
                },
                "dimensions": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "cut each embedding to this many values, at unit length",
                },
                "truncate": {
                    **BOOL,
                    "description": "checked, not applied: moc does not tokenize, so a text "
                    "longer than the backend takes is the backend's to refuse",
                },
                **common,
            },
            "required": ["model"],
        },
        "OllamaEmbed": closed(
            {
                "model": STR,
                "embeddings": {
                    "type": "array",
                    "items": VECTOR,
                    "description": "one embedding a text, in the order of input",
                },
                "total_duration": NANOSECONDS,
                "load_duration": NANOSECONDS,
                "prompt_eval_count": {"type": "integer", "minimum": 0},
            },
            required=["model", "embeddings"],  # no text: no durations
        ),
        "OllamaEmbeddingsRequest": {
            "type": "object",
            "properties": {
                "model": NAME,
                "prompt": {"type": "string", "description": "empty (or none): load the model"},
                **common,
            },
            "required": ["model"],
        },
        "OllamaEmbeddings": closed({"embedding": {**VECTOR, "description": "empty: no prompt"}}),
    }


def _ollama_manage() -> dict[str, Schema]:
    """Ollama's model management: pull loads a model moc serves; the rest are
    refused (400), or 404 where the model named is not one moc serves."""
    by_name = {"anyOf": [{"required": ["model"]}, {"required": ["name"]}]}
    named = {"model": NAME, "name": {**NAME, "description": "the older name of model"}}
    return {
        "OllamaPullRequest": {
            "type": "object",
            "properties": {
                **named,
                "stream": {**BOOL, "default": True},
                "insecure": {**BOOL, "description": "accepted; moc downloads nothing"},
            },
            **by_name,
        },
        "OllamaStatus": closed(
            {"status": {"type": "string", "description": "loading <model>, then success"}}
        ),
        "OllamaSuccess": closed({"status": {"const": "success"}}),
        "OllamaDeleteRequest": {"type": "object", "properties": named, **by_name},
        "OllamaPushRequest": {
            "type": "object",
            "properties": {**named, "insecure": BOOL, "stream": BOOL},
            **by_name,
        },
        "OllamaCreateRequest": {
            "type": "object",
            "description": "moc refuses every create: 404 where from is not a model moc "
            "serves, else 400 (a create from files needs /api/blobs, which moc does not serve)",
            "properties": {
                "model": {**STR, "description": "the new model's name"},
                "from": {**NAME, "description": "the model to start from"},
            },
            "required": ["model", "from"],
        },
        "OllamaCopyRequest": {
            "type": "object",
            "properties": {"source": NAME, "destination": STR},
            "required": ["source"],
        },
    }


def schemas(config: Config) -> dict[str, Schema]:
    return {
        **answers(),
        **_backend_error(),
        **requests(config),
        **_openai(),
        **_ollama(),
        **_ollama_embeddings(),
        **_ollama_manage(),
    }
