"""The OpenAPI document and the app cannot drift: every route the app
registers is documented, every documented operation is a route, the document
is valid OpenAPI 3.1, and ``GET /openapi.json`` serves it with the running
configuration's limits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import orjson
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from moc.config import Config
from moc.daemon import build_services
from moc.devices.host import HostProbe
from moc.gateway.http.app import ROUTES, build_app
from moc.gateway.http.errors import _STATUS
from moc.gateway.http.ollama_manage import fallback
from moc.gateway.http.openapi import document
from moc.store.sqlite import Database

METHODS = {"get", "post", "put", "patch", "delete"}


def _registered() -> set[tuple[str, str]]:
    found = set()
    for route in ROUTES:
        if route is fallback:  # unknown /api/… paths, answered 404 in Ollama's shape
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {name:path} → {name}
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET
                found.add((method.lower(), path))
    return found


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m, path) for path, item in doc["paths"].items() for m in item if m in METHODS}


def test_every_route_is_documented_and_every_documented_operation_is_a_route() -> None:
    registered, documented = _registered(), _documented(document(Config()))
    assert registered - documented == set(), "routes missing from the OpenAPI document"
    assert documented - registered == set(), "documented operations no route serves"
    assert len(registered) == 73


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document(Config())
    OPENAPI_31_VALIDATOR.validate(doc)
    OPENAPI_31_VALIDATOR.validate(document(AUTH_ON))
    for name, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    refs = set(re.findall(rb'"#/components/schemas/(\w+)"', orjson.dumps(doc)))
    assert {r.decode() for r in refs} <= set(doc["components"]["schemas"])


AUTH_ON = Config(auth={"enabled": True})  # type: ignore[arg-type]


def test_every_status_moc_answers_errors_with_is_documented() -> None:
    doc = document(AUTH_ON)
    statuses = {
        int(code)
        for item in doc["paths"].values()
        for op in item.values()
        for code in op["responses"]
        if code.isdigit()
    }
    assert set(_STATUS.values()) <= statuses


def test_the_document_states_the_configured_limits() -> None:
    config = Config(leases={"max_ttl_s": 120, "max_wait_s": 5})  # type: ignore[arg-type]
    acquire = document(config)["components"]["schemas"]["LeaseAcquire"]["properties"]
    assert acquire["ttl_s"]["anyOf"][0]["maximum"] == 120  # anyOf: the value, or null
    assert acquire["wait_s"]["anyOf"][0]["maximum"] == 5


async def test_openapi_json_is_served(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, runtimes={"demo_models": False})  # type: ignore[arg-type]
    db = Database(tmp_path / "moc.db")
    services = build_services(config, db, [HostProbe([("host", 1 << 30)])])
    transport = httpx.ASGITransport(app=build_app(services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://moc") as client:
            response = await client.get("/openapi.json")
            wrong_method = await client.post("/openapi.json")
    finally:
        await services.lifecycle.close()
        db.close()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == document(config)
    assert wrong_method.status_code == 405
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_with_auth_on_every_guarded_operation_states_its_role_and_refusals() -> None:
    doc = document(AUTH_ON)
    keys = doc["paths"]["/v1/keys"]["post"]
    assert keys["security"] == [{"bearer": []}]
    assert keys["description"] == "Needs the role admin or above."
    assert {"401", "403", "429"} <= set(keys["responses"])
    tags = doc["paths"]["/api/tags"]["get"]["responses"]["401"]
    assert tags["content"]["application/json"]["schema"]["$ref"].endswith("/OllamaError")
    assert "security" not in doc["paths"]["/health"]["get"]
    assert "security" not in document(Config())["paths"]["/v1/keys"]["post"]
