"""Errors on HTTP: the one mapping from error class to status, and the envelope.

The envelope is OpenAI's (``{"error": {"message", "type", "code", "param"}}``)
plus ``"src": "moc"`` so clients can tell moc's errors from a backend's, and
``details`` with the machine-readable facts (bytes asked and free, limits).
"""

from __future__ import annotations

import inspect
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from moc import errors as e
from moc import wire
from moc.telemetry.logs import event
from moc.wire.errors import ErrorType

log = logging.getLogger(__name__)

# Writes an error as one of the envelopes (error_body, ollama_error_body).
Shape = Callable[[e.MocError], Mapping[str, Any]]

# Most specific first: the first class in an error's MRO found here wins.
_STATUS: dict[type[e.MocError], int] = {
    e.LearningJobInvalid: 422,
    e.InvalidRequest: 400,
    e.NotFound: 404,
    e.LeaseRevoked: 410,
    e.FencingTokenMismatch: 409,
    e.ExceedsCapacity: 422,
    e.ModelFileInvalid: 422,
    e.DatasetInvalid: 422,
    e.DatasetExists: 409,
    e.DatasetInUse: 409,
    e.GoalExists: 409,
    e.TooManyActiveGoals: 409,
    e.ArtifactInvalid: 422,
    e.ArtifactExists: 409,
    e.SigningKeyExists: 409,
    e.ArtifactRefused: 422,
    e.InsufficientMemory: 409,
    e.QueueFull: 429,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.RateLimited: 429,
    e.UpstreamTimeout: 504,
    e.Unavailable: 503,
    e.MocError: 500,
}


def http_status(err: e.MocError) -> int:
    return status_of(type(err))


def status_of(kind: type[e.MocError]) -> int:
    for cls in kind.__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


@dataclass(frozen=True)
class ErrorKind:
    """One error code as HTTP answers it: a row of the error tables in the
    OpenAPI document and docs/api.md, both built from this mapping."""

    cls: type[e.MocError]
    code: str
    status: int
    retry_after: bool  # the answer carries Retry-After
    meaning: str  # the class docstring's first paragraph


# Raised at startup, never answered to a client.
_NEVER_ANSWERED = (e.ConfigError,)


def error_kinds() -> list[ErrorKind]:
    """Every code a client can get, in the order of the tree in :mod:`moc.errors`."""
    kinds: list[ErrorKind] = []

    def visit(cls: type[e.MocError]) -> None:
        if cls in _NEVER_ANSWERED:
            return
        doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
        meaning = " ".join(doc.split())
        kinds.append(ErrorKind(cls, cls.code, status_of(cls), _retries(cls), meaning))
        for sub in cls.__subclasses__():
            visit(sub)

    visit(e.MocError)
    return kinds


def _retries(cls: type[e.MocError]) -> bool:
    """What :func:`error_headers` does for errors of ``cls``: Retry-After on
    every Unavailable, and where ``retry_after_s`` is positive, which it is by
    default for the classes that take one (ExceedsCapacity sets 0: never)."""
    if issubclass(cls, e.Unavailable):
        return True
    param = inspect.signature(cls.__init__).parameters.get("retry_after_s")
    return param is not None and isinstance(param.default, float) and param.default > 0


def _type_for(status: int) -> ErrorType:
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"


def error_body(err: e.MocError) -> wire.Error:
    status = http_status(err)
    return {
        "error": {
            "message": err.message,
            "type": _type_for(status),
            "code": err.code,
            "param": err.details.get("field"),
            "src": "moc",
            "details": err.details,
        }
    }


def ollama_error_body(err: e.MocError) -> wire.OllamaError:
    """Ollama's error shape (``{"error": "message"}``), with moc's code beside it."""
    return {"error": err.message, "code": err.code, "src": "moc", "details": err.details}


def error_headers(err: e.MocError) -> dict[str, str]:
    retry_after = getattr(err, "retry_after_s", None)
    if isinstance(retry_after, float) and retry_after > 0:
        return {"retry-after": str(max(1, math.ceil(retry_after)))}
    if isinstance(err, e.Unavailable):
        return {"retry-after": "1"}
    return {}


def error_response(
    err: e.MocError,
    shape: Shape = error_body,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> Response:
    """The error in ``shape`` (OpenAI's envelope, or Ollama's), with its status
    and ``Retry-After``, and any ``extra_headers`` (moc's timing headers)."""
    response = Response(
        error_json(err, shape),
        http_status(err),
        error_headers(err),
        media_type="application/json",
    )
    response.raw_headers.extend(extra_headers)
    return response


def error_json(err: e.MocError, shape: Shape = error_body) -> bytes:
    """The error in ``shape`` as JSON: the one writer of every error body,
    whole answers and stream events alike."""
    return _dumps(shape(err))


def _dumps(body: Mapping[str, Any]) -> bytes:
    """The value a client sent may be an integer JSON allows and orjson cannot
    write (past 64 bits); such integers are written as strings rather than
    turning the answer into a 500."""
    try:
        return orjson.dumps(body, default=str)
    except TypeError:
        return orjson.dumps(_wide_ints_as_str(body), default=str)


def _wide_ints_as_str(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _wide_ints_as_str(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wide_ints_as_str(v) for v in value]
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def internal_error_response(exc: BaseException) -> Response:
    ref = uuid.uuid4().hex[:12]
    event(log, logging.ERROR, "unhandled error in request", ref=ref, error=repr(exc))
    log.debug("traceback for %s", ref, exc_info=exc)
    return error_response(
        e.MocError(f"internal error; moc's log has the details (ref {ref})", ref=ref)
    )
