"""A key request's fields, checked once: each refusal names the field, the
limit and the value (400 ``invalid_request``)."""

from __future__ import annotations

from typing import Any

from moc.auth.principal import Limits
from moc.auth.roles import Role
from moc.errors import InvalidRequest

MAX_NAME = 128
MAX_MODELS = 256
MAX_GLOB = 256
MAX_GRACE_S = 7 * 86_400.0
# The most each limit may be (the least is 1).
LIMIT_MAX = {
    "requests_per_minute": 10_000_000,
    "tokens_per_minute": 10_000_000_000,
    "concurrent_requests": 100_000,
    "device_byte_seconds_per_day": 2**62,
}
ROLE_NAMES = [r.label for r in reversed(Role)]


def role(text: str) -> Role:
    found = Role.named(text)
    if found is None or text != found.label:
        allowed = "|".join(ROLE_NAMES)
        raise InvalidRequest("role", f"must be one of {allowed}", value=text, limit=allowed)
    return found


def name(text: str) -> str:
    if not 1 <= len(text) <= MAX_NAME:
        raise InvalidRequest(
            "name", f"must be 1 to {MAX_NAME} characters", value=text[:40], limit=MAX_NAME
        )
    return text


def models(globs: list[str] | None) -> tuple[str, ...] | None:
    if globs is None:
        return None
    if len(globs) > MAX_MODELS:
        raise InvalidRequest(
            "models", f"at most {MAX_MODELS} globs", value=len(globs), limit=MAX_MODELS
        )
    for i, glob in enumerate(globs):
        if not 1 <= len(glob) <= MAX_GLOB:
            raise InvalidRequest(
                f"models.{i}", f"must be 1 to {MAX_GLOB} characters", value=glob[:40],
                limit=MAX_GLOB,
            )  # fmt: skip
    return tuple(globs)


def limits(given: dict[str, Any] | None) -> Limits:
    if not given:
        return Limits()
    for field, value in given.items():
        if field not in LIMIT_MAX:
            allowed = "|".join(LIMIT_MAX)
            raise InvalidRequest(f"limits.{field}", f"is not a limit; limits are {allowed}")
        if value is not None and not 1 <= value <= LIMIT_MAX[field]:
            raise InvalidRequest(
                f"limits.{field}",
                f"must be a whole number from 1 to {LIMIT_MAX[field]}",
                value=value,
                limit=LIMIT_MAX[field],
            )
    return Limits(**given)


def grace(seconds: float) -> float:
    if not 0 <= seconds <= MAX_GRACE_S:
        raise InvalidRequest(
            "grace_s", f"must be between 0 and {MAX_GRACE_S:g} seconds", value=seconds,
            limit=MAX_GRACE_S,
        )  # fmt: skip
    return float(seconds)
