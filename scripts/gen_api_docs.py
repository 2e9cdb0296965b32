"""Regenerate docs/api.md's tables of fields and error codes from the code.

    python scripts/gen_api_docs.py [--check]

The field tables come from the OpenAPI document's components (themselves
generated from the TypedDicts in ``moc.wire``, whose field docstrings are
the meanings), the error table from ``moc.gateway.http.errors.error_kinds``
(HTTP status and Retry-After from the one mapping, the meaning from each
class's docstring) and the gRPC mapping. Each table sits between a pair of
markers in docs/api.md; everything else there is written by hand.
``--check`` changes nothing and fails when the committed file is stale;
tests/gateway/test_api_docs_current.py runs it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from moc import errors
from moc.config import Config
from moc.gateway.grpc.errors import grpc_status
from moc.gateway.http.errors import error_kinds
from moc.gateway.http.openapi import document

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "api.md"
REGION = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) .*?-->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
    re.DOTALL,
)
# The component whose fields each region lists.
FIELDS = {
    "lease": "Lease",
    "device": "Device",
    "model": "Model",
    "model-detail": "ModelDetail",
    "model-size": "ModelSize",
    "job": "Job",
    "dataset": "Dataset",
    "goal": "Goal",
    "learning-job": "LearningJob",
    "learning-progress": "LearningProgress",
    "artifact": "Artifact",
}
# How gRPC answers where it is not a status: a lease that does not fit is an answer.
GRPC_ACQUIRE = {
    "insufficient_memory": "(acquire: `granted=false`)",
    "exceeds_capacity": "(acquire: `granted=false`, `retry_after_ms=0`)",
}


def _md(text: str) -> str:
    """Docstring markup (``x``) as Markdown, safe in a table cell."""
    return text.replace("``", "`").replace("|", "\\|")


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if "const" in schema:
        return f"`{_json(schema['const'])}`"
    if "enum" in schema:
        return " / ".join(f"`{_json(v)}`" for v in schema["enum"])
    if schema.get("type") == "array":
        return f"array of {_type(schema['items'])}"
    return str(schema.get("type", "any"))


def _json(value: Any) -> str:
    return "true" if value is True else f'"{value}"' if isinstance(value, str) else str(value)


def field_table(schemas: dict[str, Any], name: str) -> str:
    """One row a field; a shape that extends another lists only its own fields."""
    schema = schemas[name]
    inherited: set[str] = set()
    if name == "ModelDetail":
        inherited = set(schemas["Model"]["properties"])
    rows = ["| field | type | meaning |", "| --- | --- | --- |"]
    for field, prop in schema["properties"].items():
        if field not in inherited:
            meaning = _md(prop.get("description", ""))
            rows.append(f"| `{field}` | {_type(prop)} | {meaning} |")
    return "\n".join(rows) + "\n"


def error_table() -> str:
    rows = ["| code | HTTP | gRPC | meaning |", "| --- | --- | --- | --- |"]
    for kind in error_kinds():
        http = f"{kind.status} + `Retry-After`" if kind.retry_after else str(kind.status)
        grpc = grpc_status(errors.from_code(kind.code, "")).name
        if kind.code in GRPC_ACQUIRE:
            grpc = f"{grpc} {GRPC_ACQUIRE[kind.code]}"
        rows.append(f"| `{kind.code}` | {http} | {grpc} | {_md(kind.meaning)} |")
    return "\n".join(rows) + "\n"


def regions() -> dict[str, str]:
    schemas = document(Config())["components"]["schemas"]
    out = {region: field_table(schemas, name) for region, name in FIELDS.items()}
    out["errors"] = error_table()
    return out


def render(text: str) -> str:
    fresh = regions()
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        seen.add(name)
        return match[1] + fresh[name] + match[4]

    out = REGION.sub(replace, text)
    missing = set(fresh) - seen
    if missing:
        raise SystemExit(f"docs/api.md has no markers for {sorted(missing)}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args()
    text = DOCS.read_text()
    fresh = render(text)
    if args.check:
        if fresh != text:
            print("docs/api.md is stale: run python scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    DOCS.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
