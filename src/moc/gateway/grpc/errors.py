"""Errors on gRPC: the one mapping from error class to status code."""

from __future__ import annotations

import grpc

from moc import errors as e

# Most specific first: the first class in an error's MRO found here wins.
_CODES: dict[type[e.MocError], grpc.StatusCode] = {
    e.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    e.NotFound: grpc.StatusCode.NOT_FOUND,
    e.LeaseRevoked: grpc.StatusCode.FAILED_PRECONDITION,
    e.FencingTokenMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    e.InsufficientMemory: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.ModelFileInvalid: grpc.StatusCode.FAILED_PRECONDITION,
    e.DatasetInvalid: grpc.StatusCode.INVALID_ARGUMENT,
    e.DatasetExists: grpc.StatusCode.ALREADY_EXISTS,
    e.DatasetInUse: grpc.StatusCode.FAILED_PRECONDITION,
    e.GoalExists: grpc.StatusCode.ALREADY_EXISTS,
    e.TooManyActiveGoals: grpc.StatusCode.FAILED_PRECONDITION,
    e.ArtifactInvalid: grpc.StatusCode.INVALID_ARGUMENT,
    e.ArtifactExists: grpc.StatusCode.ALREADY_EXISTS,
    e.SigningKeyExists: grpc.StatusCode.ALREADY_EXISTS,
    e.ArtifactRefused: grpc.StatusCode.FAILED_PRECONDITION,
    e.QueueFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    e.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    e.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.UpstreamTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    e.Unavailable: grpc.StatusCode.UNAVAILABLE,
    e.MocError: grpc.StatusCode.INTERNAL,
}

# The gRPC messages name some fields differently from the native API.
FIELD_NAMES = {
    "mb": "vram_estimate_mb",
    "ttl_s": "ttl_seconds",
    "holder": "client",
    "wait_s": "wait_seconds",
}


def grpc_status(err: e.MocError) -> grpc.StatusCode:
    for cls in type(err).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def grpc_message(err: e.MocError) -> str:
    if isinstance(err, e.InvalidRequest) and err.field in FIELD_NAMES:
        return FIELD_NAMES[err.field] + err.message[len(err.field) :]
    return err.message
