"""How a wire shape states its JSON Schema, without importing pydantic.

pydantic reads ``__pydantic_config__`` from a TypedDict when it builds the
schema; setting it here keeps the SDK's import of these types free of
pydantic (``import moc`` does not load it) while the OpenAPI document still
gets closed objects (``additionalProperties: false``), which is what lets
schemathesis catch a field a view adds without its shape saying so.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T", bound=type)


def closed(cls: T) -> T:
    """A shape with exactly its fields: moc never adds one a client was not told of."""
    setattr(cls, "__pydantic_config__", {"extra": "forbid"})  # noqa: B010
    return cls
