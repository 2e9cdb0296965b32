"""The OpenAPI components of moc's answers, generated from :mod:`moc.wire`.

pydantic writes each TypedDict's JSON Schema (closed objects, ``Literal`` as
``enum``/``const``, ``X | None`` as ``anyOf`` with null); the fields'
docstrings become their descriptions here, read from the source once, since
pydantic only reads a TypedDict's own fields' docstrings and not those it
inherits (``ModelDetail`` from ``Model``). Built when the document is built,
never per request.
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import itertools
import textwrap
import typing
from typing import Any

from pydantic import TypeAdapter
from typing_extensions import is_typeddict

from moc import wire

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"

# The shapes moc answers with; the nested ones (ErrorBody, ModelSize, …)
# come along as the components these refer to.
ANSWERS: tuple[type, ...] = (
    wire.Error,
    wire.OllamaError,
    wire.Health,
    wire.Device,
    wire.DeviceList,
    wire.Lease,
    wire.LeaseList,
    wire.LeaseReleased,
    wire.Model,
    wire.ModelDetail,
    wire.ModelUnloaded,
    wire.ModelList,
    wire.Job,
    wire.JobList,
    wire.Stats,
    wire.Dataset,
    wire.DatasetList,
    wire.DatasetRemoved,
    wire.Goal,
    wire.GoalList,
    wire.GoalDeleted,
    wire.LearningJob,
    wire.LearningJobList,
    wire.IndexList,
    wire.IndexResults,
    wire.Artifact,
    wire.ArtifactDetail,
    wire.ArtifactList,
    wire.ArtifactsRemoved,
    wire.ArtifactVerified,
    wire.AdapterList,
    wire.SigningKey,
    wire.SigningKeyList,
    wire.ApiKey,
    wire.ApiKeyCreated,
    wire.ApiKeyList,
    wire.ApiKeyRevoked,
    wire.Caller,
    wire.AuditList,
    wire.ClusterView,
)


def answers() -> dict[str, Schema]:
    """The components, each a fresh copy (a caller may change its document)."""
    return copy.deepcopy(_built())


@functools.cache
def _built() -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    for shape in ANSWERS:
        schema = TypeAdapter(shape).json_schema(ref_template=REF)
        out.update(schema.pop("$defs", {}))
        out[shape.__name__] = schema
    for name, cls in _shapes().items():
        if name in out:
            _describe(out[name], field_docs(cls))
    return {name: untitled(schema) for name, schema in out.items()}


def _shapes() -> dict[str, type]:
    """Every TypedDict reachable from ANSWERS, by name (pydantic's component names)."""
    found: dict[str, type] = {}

    def visit(tp: Any) -> None:
        if is_typeddict(tp):
            if tp.__name__ in found:
                return
            found[tp.__name__] = tp
            for hint in typing.get_type_hints(tp).values():
                visit(hint)
        for arg in typing.get_args(tp):
            visit(arg)

    for shape in ANSWERS:
        visit(shape)
    return found


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of ``cls`` and of the shapes it extends."""
    docs: dict[str, str] = {}
    for base in getattr(cls, "__orig_bases__", ()):
        if is_typeddict(base):
            docs.update(field_docs(base))
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    for stmt, after in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[stmt.target.id] = " ".join(after.value.value.split())  # one line, as wrapped
    return docs


def _describe(schema: Schema, docs: dict[str, str]) -> None:
    for field, prop in schema.get("properties", {}).items():
        if field in docs:
            prop["description"] = docs[field]


def untitled(schema: Any) -> Any:
    """The schema without pydantic's titles (``"Fencing Token"``): noise in a
    document whose property names already say it."""
    if isinstance(schema, list):
        return [untitled(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties":  # a mapping of names: a field may be called "title"
            out[key] = {name: untitled(s) for name, s in value.items()}
        else:
            out[key] = untitled(value)
    return out
