"""The OpenAPI components of the native API's request bodies, generated from
the pydantic models that parse them.

A model (:mod:`moc.gateway.http.wire`, :class:`moc.jobs.model.JobSubmission`)
gives its body's fields, their types and meanings, which may be null, and
that no other field is taken. The models check types only, so what else moc
refuses is added here from where it is checked: the ranges of
:mod:`moc.leases.validate` and of the running configuration, and the rules
across fields (exactly one of bytes and mb, of prompt and messages). Each is
stated where moc enforces it and nowhere else; schemathesis sends what the
document allows and what it does not, and fails on either side of a gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from moc.artifacts.keys import GENERATED_TYPES
from moc.artifacts.keys import NAME_PATTERN as KEY_NAME
from moc.auth import validate as auth_validate
from moc.config import Config
from moc.gateway.http.openapi_answers import untitled
from moc.gateway.http.wire import (
    GoalCreateBody,
    GoalUpdateBody,
    IndexQueryBody,
    KeyCreateBody,
    KeyRotateBody,
    LeaseAcquireBody,
    LeaseReleaseBody,
    LeaseRenewBody,
    SigningKeyCreateBody,
)
from moc.jobs.model import MAX_METADATA, JobSubmission
from moc.learning.goals import model as goals
from moc.learning.jobs.model import PARAMS, Kind, LearningJobRequest
from moc.leases import validate
from moc.leases.model import PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN
from moc.scheduler.waiting import Priority

Schema = dict[str, Any]
NULL: Schema = {"type": "null"}
# The OpenAI fields a job's body sets itself (JobSubmission.body); options may not.
RESERVED_OPTIONS = ["model", "messages", "stream"]


def requests(config: Config) -> dict[str, Schema]:
    return {
        "LeaseAcquire": _acquire(config),
        "LeaseRenew": _body(LeaseRenewBody, {"ttl_s": _ttl(config), "fencing_token": _TOKEN}),
        "LeaseRelease": _body(LeaseReleaseBody, {"fencing_token": _TOKEN}),
        "JobSubmission": _job(),
        "GoalCreate": _body(GoalCreateBody, _goal_create()),
        "GoalUpdate": _body(GoalUpdateBody, _GOAL_FIELDS),
        "LearningJobRequest": _learning_job(),
        "IndexQuery": _body(IndexQueryBody, {}),
        "KeyCreate": _body(KeyCreateBody, _key_create()),
        "KeyRotate": _body(
            KeyRotateBody, {"grace_s": {"minimum": 0, "maximum": auth_validate.MAX_GRACE_S}}
        ),
        "SigningKeyCreate": _body(
            SigningKeyCreateBody,
            {"name": {"pattern": KEY_NAME}, "type": {"enum": list(GENERATED_TYPES)}},
        ),
    }


def _key_create() -> dict[str, Schema]:
    v = auth_validate
    glob = {"type": "string", "minLength": 1, "maxLength": v.MAX_GLOB}
    limit = {
        name: {"anyOf": [{"type": "integer", "minimum": 1, "maximum": most}, NULL]}
        for name, most in v.LIMIT_MAX.items()
    }
    return {
        "name": {"minLength": 1, "maxLength": v.MAX_NAME},
        "role": {"enum": v.ROLE_NAMES},
        "models": {"items": glob, "maxItems": v.MAX_MODELS},
        "limits": {"properties": limit, "additionalProperties": False},
        "expires_at": {"format": "date-time"},
    }


def _body(model: type[BaseModel], limits: Mapping[str, Schema]) -> Schema:
    """``model``'s JSON Schema, each field's value narrowed by its ``limits``.

    pydantic's ``"default": null`` is dropped: null there means "not given",
    and where moc then uses a value, the limits say which.
    """
    schema: Schema = model.model_json_schema()
    for name, prop in schema["properties"].items():
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        _value(prop).update(limits.get(name, {}))
    unknown = set(limits) - set(schema["properties"])
    assert not unknown, f"{model.__name__} has no fields {sorted(unknown)}"
    out: Schema = untitled(schema)
    return out


def _value(prop: Schema) -> Schema:
    """The schema a field's value matches when it is not null: the one that
    limits go on. ``int | float`` is one JSON number, so one schema."""
    if "anyOf" not in prop:
        return prop
    values = [s for s in prop["anyOf"] if s != NULL]
    types = [s.get("type") for s in values]
    if "integer" in types and "number" in types:
        values = [s for s in values if s.get("type") != "integer"]
    prop["anyOf"] = values + ([NULL] if NULL in prop["anyOf"] else [])
    return values[0] if len(values) == 1 else prop


def _given(field: str, schema: Schema) -> Schema:
    """The object has ``field``, and it matches ``schema`` (null is "not given")."""
    return {"required": [field], "properties": {field: schema}}


def _one_of(a: Schema, b: Schema) -> list[Schema]:
    return [{**a, "not": b}, {**b, "not": a}]


_TOKEN: Schema = {"minimum": 0, "maximum": validate.MAX_TOKEN}


def _ttl(config: Config) -> Schema:
    return {"minimum": 1, "maximum": config.leases.max_ttl_s}


def _acquire(config: Config) -> Schema:
    limits = config.leases
    schema = _body(
        LeaseAcquireBody,
        {
            "bytes": {"minimum": 1, "maximum": validate.MAX_BYTES},
            "mb": {"minimum": validate.MIN_MB, "maximum": validate.MAX_BYTES // validate.MIB},
            "device": {"minLength": 1},
            "ttl_s": {**_ttl(config), "default": limits.default_ttl_s},
            "priority": {
                "minimum": PRIORITY_MIN,
                "maximum": PRIORITY_MAX,
                "default": PRIORITY_DEFAULT,
            },
            "holder": {"maxLength": validate.MAX_HOLDER},
            "pid": {"minimum": 1, "maximum": validate.MAX_PID},
            "wait_s": {"minimum": 0, "maximum": limits.max_wait_s, "default": 0},
            "yield_s": {"minimum": validate.MIN_YIELD_S, "maximum": validate.MAX_YIELD_S},
        },
    )
    number = {"type": "number"}
    schema["oneOf"] = _one_of(_given("bytes", number), _given("mb", number))
    return schema


def _job() -> Schema:
    schema = _body(
        JobSubmission,
        {
            "priority": {"enum": [p.label for p in Priority]},
            "metadata": {
                "description": f"at most {MAX_METADATA} bytes as JSON; "
                "integers here, in messages and in options fit in 64 bits",
            },
            "options": {"propertyNames": {"not": {"enum": RESERVED_OPTIONS}}},
        },
    )
    schema["oneOf"] = _one_of(
        _given("prompt", {"type": "string"}), _given("messages", {"type": "array"})
    )
    return schema


_GOAL_NAME: Schema = {
    "minLength": 1,
    "maxLength": goals.MAX_NAME,
    "pattern": goals.NAME_PATTERN,
}
_GOAL_FIELDS: dict[str, Schema] = {
    "weight": {"exclusiveMinimum": 0, "maximum": goals.WEIGHT_MAX},
    "description": {"maxLength": goals.MAX_DESCRIPTION},
    "status": {"enum": [s.value for s in goals.GoalStatus]},
}


def _goal_create() -> dict[str, Schema]:
    defaults = {
        "description": {"default": ""},
        "status": {"default": goals.GoalStatus.ACTIVE.value},
    }
    fields = {k: {**v, **defaults.get(k, {})} for k, v in _GOAL_FIELDS.items()}
    return {"name": _GOAL_NAME, **fields}


# What each kind of learning job names besides its params: (required, optional).
_LEARNING_FIELDS = {
    Kind.SFT: (("dataset",), ("base",)),
    Kind.QUANTIZE: (("model",), ()),
    Kind.INDEX: (("dataset",), ()),
}
_LEARNING_COMMON = ("goal", "priority", "device")


def _learning_job() -> Schema:
    """One shape per kind (its fields and its params' own schema), so that a
    generated job is one moc would take."""
    whole = _body(LearningJobRequest, {})
    props = whole["properties"]
    variants = []
    for kind, (required, optional) in _LEARNING_FIELDS.items():
        params = _inlined(untitled(PARAMS[kind].model_json_schema()))
        params.pop("description", None)
        fields = {name: props[name] for name in (*required, *optional, *_LEARNING_COMMON)}
        variants.append(
            {
                "type": "object",
                "properties": {"kind": {"const": kind.value}, **fields, "params": params},
                "required": ["kind", *required, *(["params"] if params.get("required") else [])],
                "additionalProperties": False,
            }
        )
    return {"description": whole["description"], "oneOf": variants}


def _inlined(schema: Schema) -> Schema:
    """``schema`` with its ``$defs`` references replaced by what they name."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out: Schema = walk(schema)
    return out
