"""schemathesis against a ``moc serve`` with auth on, from the document it
serves: with an admin key every operation answers as documented and never
with a 5xx; without credentials every guarded operation answers 401 and
nothing else (health and the document stay open)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode

from moc.auth.routes import OPEN
from moc.config import Config
from moc.gateway.http.openapi import document
from moc.gateway.http.openapi_auth import _BY_PATH
from tests.conftest import MocProcess
from tests.integration.test_openapi_fuzz import (
    ACCEPTED,
    HEALTH,
    LEASES,
    NATIVE,
    OPERATIONS,
    _storable,
)

EXAMPLES = max(3, int(os.environ.get("MOC_FUZZ_EXAMPLES", "15")) // 3)
ADMIN = "admin-secret-for-the-fuzz-tests-0123456789"
AUTH_ON = Config(auth={"enabled": True})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def moc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MocProcess]:
    config = {"leases": LEASES, "auth": {"enabled": True, "failed_per_minute": 1_000_000}}
    proc = MocProcess(tmp_path_factory.mktemp("fuzz-auth") / "data", config)
    os.environ["MOC_ADMIN_KEY"] = ADMIN
    try:
        proc.start()
    finally:
        del os.environ["MOC_ADMIN_KEY"]
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def api(moc: MocProcess) -> Any:
    doc = httpx.get(f"{moc.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(_storable(doc))
    schema.config.update(base_url=moc.url)
    schema.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED
    return schema


def _guarded(path: str, method: str) -> bool:
    return _BY_PATH.get((method.lower(), path), OPEN).role is not None


@pytest.mark.parametrize(("path", "method"), NATIVE, ids=[f"{m} {p}" for p, m in NATIVE])
def test_with_an_admin_key_every_native_route_answers_as_documented(
    api: Any, path: str, method: str
) -> None:
    @given(case=api[path][method].as_strategy(GenerationMode.POSITIVE))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH, database=None)
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)

    run()


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_without_credentials_a_guarded_route_answers_only_401(
    api: Any, path: str, method: str
) -> None:
    guarded = _guarded(path, method)
    assert ("security" in document(AUTH_ON)["paths"][path][method.lower()]) == (
        guarded and path != "/metrics"
    )

    @given(case=api[path][method].as_strategy(GenerationMode.POSITIVE))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH, database=None)
    def run(case: Any) -> None:
        response = case.call(timeout=30)
        if guarded and path != "/metrics":
            assert response.status_code == 401, (case, response.text)
            assert response.json()["code" if path.startswith("/api/") else "error"]
        else:
            assert response.status_code != 401

    run()
