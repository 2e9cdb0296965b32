"""Every error class maps to one HTTP status and one gRPC code."""

from __future__ import annotations

import grpc
import pytest

from moc import errors as e
from moc.gateway.grpc.errors import grpc_message, grpc_status
from moc.gateway.http.errors import error_response, http_status

CASES = [
    (e.InvalidRequest("bytes", "bad"), 400, grpc.StatusCode.INVALID_ARGUMENT),
    (e.DeviceNotFound("x"), 404, grpc.StatusCode.NOT_FOUND),
    (e.LeaseExpired("x"), 404, grpc.StatusCode.NOT_FOUND),
    (e.LeaseRevoked("x"), 410, grpc.StatusCode.FAILED_PRECONDITION),
    (e.FencingTokenMismatch("x"), 409, grpc.StatusCode.FAILED_PRECONDITION),
    (e.InsufficientMemory("x"), 409, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.ExceedsCapacity("x"), 422, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.GoalNotFound("x"), 404, grpc.StatusCode.NOT_FOUND),
    (e.GoalExists("x"), 409, grpc.StatusCode.ALREADY_EXISTS),
    (e.TooManyActiveGoals("x"), 409, grpc.StatusCode.FAILED_PRECONDITION),
    (e.QueueFull("x"), 429, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (e.ShuttingDown("x"), 503, grpc.StatusCode.UNAVAILABLE),
    (e.StoreUnavailable("x"), 503, grpc.StatusCode.UNAVAILABLE),
    (e.MocError("x"), 500, grpc.StatusCode.INTERNAL),
]


@pytest.mark.parametrize(("err", "status", "code"), CASES)
def test_one_mapping_per_transport(err: e.MocError, status: int, code: grpc.StatusCode) -> None:
    assert http_status(err) == status
    assert grpc_status(err) == code


def test_retry_after_header_only_when_retrying_can_help() -> None:
    assert (
        error_response(e.InsufficientMemory("x", retry_after_s=2.2)).headers["retry-after"] == "3"
    )
    assert "retry-after" not in error_response(e.ExceedsCapacity("x")).headers
    assert error_response(e.ShuttingDown("x")).headers["retry-after"] == "1"


def test_grpc_messages_use_grpc_field_names() -> None:
    err = e.InvalidRequest("mb", "must be greater than 0", value=-3)
    assert grpc_message(err) == "vram_estimate_mb: must be greater than 0 (got -3)"


def test_every_code_is_unique_and_round_trips() -> None:
    classes = [type(err) for err, _, _ in CASES]
    assert len({c.code for c in classes}) == len(classes)
    for cls in classes:
        rebuilt = e.from_code(cls.code, "m", {"retry_after_s": 4})
        assert type(rebuilt) is cls
