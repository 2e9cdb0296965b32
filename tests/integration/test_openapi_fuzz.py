"""schemathesis against a real ``moc serve``, from the document moc serves.

Every operation of ``GET /openapi.json`` gets generated requests, valid and
invalid (negative mode), and each answer is checked by schemathesis's default
checks: no 5xx, a documented status, content type and headers, a body that
conforms to the documented schema, invalid data refused with a 4xx, valid
data accepted, 405 with ``Allow`` for undocumented methods.

Inference routes run the demo models for real, so this test narrows their
bodies: a model from the catalog and at most a few tokens. That narrowing is
the test's, not the document's (moc passes ``max_tokens`` to the backend as
sent), so those routes are fuzzed with valid data only; random and invalid
bodies for them are ``test_bad_input.py``'s.

``MOC_FUZZ_EXAMPLES=2000`` runs a bigger search (read at import: the suite
clears ``MOC_*`` variables around each test).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from moc.config import Config
from moc.gateway.http.openapi import document
from tests.conftest import MocProcess

EXAMPLES = int(os.environ.get("MOC_FUZZ_EXAMPLES", "15"))
INFERENCE = r"^/(v1/(chat/completions|completions|embeddings)|api/(generate|chat))$"
MAX_TOKENS = {"type": "integer", "minimum": 1, "maximum": 4}
# Statuses a valid request may get for reasons of state, not shape: a lease
# revoked (410) or larger than any device (422).
ACCEPTED = ["2xx", "401", "403", "404", "409", "410", "422", "429", "5xx"]
INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
FLAT = {"type": "object", "additionalProperties": {"anyOf": [INT64, {"type": ["string", "null"]}]}}

LEASES = {"max_wait_s": 0.5, "max_ttl_s": 120}
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much]


@pytest.fixture(scope="module")
def moc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MocProcess]:
    # Short waits: a generated acquire may ask for memory that other generated
    # leases hold, and would otherwise wait the default 600 s.
    config = {"leases": LEASES}
    proc = MocProcess(tmp_path_factory.mktemp("fuzz") / "data", config).start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def served(moc: MocProcess) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{moc.url}/openapi.json", timeout=10).json()
    return doc


def _narrowed(doc: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """The served document with inference bodies cut down to quick, real requests."""
    schemas = doc["components"]["schemas"]
    model = {"enum": models}
    for name in ("ChatCompletionRequest", "CompletionRequest", "EmbeddingRequest"):
        schemas[name]["properties"].update(model=model, max_tokens=MAX_TOKENS)
        schemas[name]["required"].append("max_tokens")
    for name in ("OllamaGenerateRequest", "OllamaChatRequest"):
        props = schemas[name]["properties"]
        props["model"] = model
        props["options"] = {
            "type": "object",
            "properties": {"num_predict": MAX_TOKENS},
            "required": ["num_predict"],
        }
        schemas[name]["required"].append("options")
    return doc


def _storable(doc: dict[str, Any]) -> dict[str, Any]:
    """Job fields as moc can store them: integers in 64 bits (the document says
    so in words; JSON Schema cannot tell 1e30 from 10**30)."""
    props = doc["components"]["schemas"]["JobSubmission"]["properties"]
    props["metadata"] = props["options"] = FLAT
    props["messages"] = {**props["messages"], "items": FLAT}
    return doc


def _schema(moc: MocProcess, doc: dict[str, Any]) -> Any:
    schema = schemathesis.openapi.from_dict(doc)
    schema.config.update(base_url=moc.url)
    schema.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED
    return schema


@pytest.fixture(scope="module")
def native_api(moc: MocProcess, served: dict[str, Any]) -> Any:
    return _schema(moc, _storable(copy.deepcopy(served)))


@pytest.fixture(scope="module")
def inference_api(moc: MocProcess, served: dict[str, Any]) -> Any:
    catalog = httpx.get(f"{moc.url}/v1/models", timeout=10).json()["data"]
    return _schema(moc, _narrowed(copy.deepcopy(served), [m["id"] for m in catalog]))


def _fuzz(operation: Any, mode: GenerationMode, timeout: float) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH, database=None)
    def run(case: Any) -> None:
        case.call_and_validate(timeout=timeout)

    run()


def _judged_by_moc_correctly(response: Any) -> None:
    """moc checks only the model, ``stream`` and the route's required field;
    the rest is the backend's to judge, and its errors (llama.cpp: 400 for
    content it cannot read, 500 for tools it cannot parse, 501 for embeddings
    it was not started for) come back unchanged, as documented. moc's own
    answers must not refuse valid data (400) or fail (500); its 503s (a
    circuit opened by those backend failures) are documented states."""
    if response.status_code < 400:
        return
    body = response.json()
    error = body["error"] if isinstance(body["error"], dict) else body
    if error.get("src") == "moc":
        assert response.status_code not in (400, 500), response.text


def _fuzz_inference(operation: Any) -> None:
    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=HEALTH, database=None)
    def run(case: Any) -> None:
        response = case.call(timeout=60)
        case.validate_response(
            response, excluded_checks=[not_a_server_error, positive_data_acceptance]
        )
        _judged_by_moc_correctly(response)

    run()


# The operations, from the document as built here (its paths and methods do not
# depend on configuration); the test itself fuzzes the document moc serves.
OPERATIONS = sorted(
    (path, method.upper()) for path, item in document(Config())["paths"].items() for method in item
)
NATIVE = [op for op in OPERATIONS if not re.match(INFERENCE, op[0])]
# Invalid data needs something to make invalid: a body or a query parameter
# (a path parameter is any non-empty string).
NEGATABLE = [
    (path, method)
    for path, method in NATIVE
    if any(
        "requestBody" in op or any(p["in"] != "path" for p in op.get("parameters", ()))
        for op in [document(Config())["paths"][path][method.lower()]]
    )
]
INFERENCE_OPS = [op for op in OPERATIONS if re.match(INFERENCE, op[0])]


@pytest.mark.parametrize(("path", "method"), NATIVE, ids=[f"{m} {p}" for p, m in NATIVE])
def test_native_routes_answer_valid_requests_as_documented(
    native_api: Any, path: str, method: str
) -> None:
    _fuzz(native_api[path][method], GenerationMode.POSITIVE, timeout=30)


@pytest.mark.parametrize(("path", "method"), NEGATABLE, ids=[f"{m} {p}" for p, m in NEGATABLE])
def test_native_routes_refuse_invalid_requests_as_documented(
    native_api: Any, path: str, method: str
) -> None:
    _fuzz(native_api[path][method], GenerationMode.NEGATIVE, timeout=30)


@pytest.mark.parametrize(
    ("path", "method"), INFERENCE_OPS, ids=[f"{m} {p}" for p, m in INFERENCE_OPS]
)
def test_inference_routes_conform_to_the_document(
    inference_api: Any, path: str, method: str
) -> None:
    _fuzz_inference(inference_api[path][method])


def test_moc_serves_the_document_its_code_builds(served: dict[str, Any]) -> None:
    config = Config(leases=LEASES)  # type: ignore[arg-type]
    assert served == document(config)
