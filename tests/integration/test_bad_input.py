"""Bad input never gets a 500: random JSON, wrong types and junk bytes sent
to every route that takes a body, against a real ``moc serve`` (with its
demo models, so well-formed requests run for real)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import MocProcess

ROUTES = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/api/generate",
    "/api/chat",
    "/api/show",
    "/api/embed",
    "/api/embeddings",
    "/api/pull",
    "/api/copy",
    "/api/create",
    "/api/push",
    "/v1/jobs",
    "/v1/leases",
    "/v1/goals",
]
KEYS = [
    "model",
    "messages",
    "prompt",
    "input",
    "stream",
    "priority",
    "options",
    "keep_alive",
    "n",
    "seed",
    "dimensions",
    "source",
    "name",
    "weight",
    "description",
    "status",
]
MODELS = st.sampled_from(["tiny-chat", "nope", "", "tiny-chat\x00", "a" * 300])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
values = st.recursive(
    scalars | MODELS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
bodies = st.dictionaries(st.sampled_from(KEYS), values, max_size=6) | values


@pytest.fixture(scope="module")
def http(server: MocProcess) -> Any:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _check(response: httpx.Response) -> None:
    assert response.status_code != 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error  # OpenAI's envelope (a dict) or Ollama's (a message)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=st.sampled_from(ROUTES), body=bodies, priority=st.none() | st.text(max_size=10))
@example(route="/api/generate", body={"priority": [], "model": "0"}, priority=None)  # was a 500
@example(route="/v1/leases", body={"bytes": 24945563344981098496}, priority=None)  # was a 500
def test_random_json_is_answered_without_a_500(
    http: httpx.Client, route: str, body: Any, priority: str | None
) -> None:
    headers = (
        {"x-moc-priority": priority}
        if priority and priority.isascii() and priority.isprintable()
        else {}
    )
    # json, not orjson: it writes what orjson refuses (huge integers, NaN)
    payload = json.dumps(body).encode() if body is not None else b""
    if isinstance(body, dict) and body.get("stream") is True:
        with http.stream("POST", route, content=payload, headers=headers) as response:
            response.read()
            _check(response)
        return
    _check(http.post(route, content=payload, headers=headers))


def test_a_value_too_wide_for_64_bits_is_named_in_the_error(http: httpx.Client) -> None:
    answer = http.post("/v1/leases", content=b'{"bytes": 24945563344981098496}')
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "bytes"
    assert error["details"]["value"] == "24945563344981098496"  # written as a string
    assert "1125899906842624" in error["message"]  # the limit


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=st.sampled_from(ROUTES), junk=st.binary(max_size=64))
def test_junk_bytes_are_answered_without_a_500(http: httpx.Client, route: str, junk: bytes) -> None:
    _check(http.post(route, content=junk))


def test_an_oversized_body_is_refused_naming_the_limit(http: httpx.Client) -> None:
    big = b'{"model": "tiny-chat", "prompt": "' + b"x" * (33 * 1024 * 1024) + b'"}'
    response = http.post("/v1/completions", content=big)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["details"]["limit"]) == ("body", 32 * 1024 * 1024)
