"""The error envelopes: OpenAI's for the native and OpenAI routes, Ollama's for /api/."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

from moc.wire.shape import closed

ErrorType = Literal["invalid_request_error", "rate_limit_error", "server_error"]


@closed
class ErrorBody(TypedDict):
    message: str
    type: ErrorType
    """OpenAI's class of error: rate_limit_error for 429, server_error for 5xx"""
    code: str
    """stable; the table in docs/api.md says what each means"""
    param: str | None
    """the request field at fault"""
    src: Literal["moc"]
    """tells moc's errors from a backend's"""
    details: dict[str, Any]
    """the machine-readable facts: bytes asked and free, limits, retry_after_s"""


@closed
class Error(TypedDict):
    """OpenAI's error envelope, with moc's code, source and details."""

    error: ErrorBody


# Open, as Ollama's own error is: its clients read "error" and ignore the rest.
class OllamaError(TypedDict):
    """Ollama's shape; moc's own errors add code, src and details."""

    error: str
    code: NotRequired[str]
    src: NotRequired[Literal["moc"]]
    details: NotRequired[dict[str, Any]]
