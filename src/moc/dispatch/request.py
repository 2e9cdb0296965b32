"""Inference requests, validated at the edge into one frozen type.

moc checks what it needs to route and queue a request (the model, the
priority, whether it streams, the field the endpoint cannot do without) and
leaves the rest of the OpenAI body to the backend, whose own errors are passed
back unchanged. The body is forwarded byte for byte unless moc must change it
(a ``priority`` field is removed; a remote model's name is replaced).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import orjson

from moc.errors import InvalidRequest
from moc.scheduler.waiting import Priority


class Endpoint(Enum):
    """An OpenAI route, by its path under the backend's /v1 base."""

    CHAT = "/chat/completions"
    COMPLETION = "/completions"
    EMBEDDING = "/embeddings"


# The most choices (``n``) one request may ask for. Each is a request of its
# own to the backend (moc.dispatch.choices), so n asks for n of the model's
# slots in turn; OpenAI's own limit is 128, which would fill a queue at once.
MAX_CHOICES = 16
SEED_MASK = (1 << 31) - 1

_REQUIRED = {
    Endpoint.CHAT: "messages",
    Endpoint.COMPLETION: "prompt",
    Endpoint.EMBEDDING: "input",
}


@dataclass(frozen=True)
class InferenceRequest:
    endpoint: Endpoint
    model: str
    priority: Priority
    stream: bool
    doc: dict[str, Any]  # the body as parsed, without moc's own fields
    raw: bytes | None  # the body as received, when it may be forwarded unchanged
    n: int = 1  # choices asked for; above 1, moc asks the backend for each

    def one_choice_each(self) -> list[InferenceRequest]:
        """The request as ``n`` requests for one choice each. With a seed of 0
        or more, choice i > 0 uses seed + i (kept within 31 bits, which every
        backend takes): the choices differ, and repeat when asked again. A
        negative seed (llama.cpp's -1: random) is left as it is."""
        doc = {k: v for k, v in self.doc.items() if k != "n"}
        seed = doc.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            return [replace(self, doc=doc, raw=None, n=1) for _ in range(self.n)]
        seeds = [seed] + [(seed + i) & SEED_MASK for i in range(1, self.n)]
        return [replace(self, doc={**doc, "seed": s}, raw=None, n=1) for s in seeds]

    def body_for(self, served_name: str, lora: tuple[str | None, ...] = ()) -> bytes:
        """The bytes to send to a backend that knows the model as ``served_name``;
        with ``lora`` (the adapters its runtime loaded, by id), the one named
        ``served_name`` applied, the configuration's (None) applied as always,
        and every other one named at scale 0."""
        if not lora:
            if self.raw is not None and served_name == self.model:
                return self.raw
            return orjson.dumps({**self.doc, "model": served_name})
        chosen = [
            {"id": i, "scale": 1.0 if n is None or n == served_name else 0.0}
            for i, n in enumerate(lora)
        ]
        return orjson.dumps({**self.doc, "model": served_name, "lora": chosen})


def parse_openai(endpoint: Endpoint, raw: bytes, priority_header: str | None) -> InferenceRequest:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("body", f"is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("body", "must be a JSON object", value=type(doc).__name__)
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model", "is required: the name of a model moc serves", value=model)
    stream = doc.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream", "must be true or false", value=stream)
    if stream and endpoint is Endpoint.EMBEDDING:
        raise InvalidRequest("stream", "embeddings are not streamed", value=stream)
    needed = _REQUIRED[endpoint]
    if doc.get(needed) is None:
        raise InvalidRequest(needed, f"is required for {endpoint.value}")
    if endpoint is Endpoint.CHAT and (not isinstance(doc["messages"], list) or not doc["messages"]):
        raise InvalidRequest("messages", "must be a non-empty list of messages")
    n = _choices(doc, stream) if endpoint is not Endpoint.EMBEDDING else 1
    raw_ok: bytes | None = raw
    field = doc.pop("priority", None)
    if field is not None:
        raw_ok = None  # the backend must not see moc's field (some reject unknown fields)
    priority = priority_of(priority_header, field)

    return InferenceRequest(endpoint, model, priority, stream, doc, raw_ok, n)


def _choices(doc: dict[str, Any], stream: bool) -> int:
    n = doc.get("n")
    if n is None:
        return 1
    if isinstance(n, float) and n.is_integer():
        n = int(n)  # JSON's 2.0 is the integer 2
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(
            "n", f"must be a whole number from 1 to {MAX_CHOICES}", value=n, limit=MAX_CHOICES
        )
    if n > 1 and stream:
        raise InvalidRequest(
            "n",
            "must be 1 when stream is true: moc does not stream several choices "
            "(ask without stream, or send n streaming requests)",
            value=n,
            limit=1,
        )
    return n


def priority_of(header: str | None, field: Any) -> Priority:
    """The header wins over the body's field; normal when neither is given."""
    if header is not None:
        return Priority.parse(header, "x-moc-priority")
    if field is None:
        return Priority.NORMAL
    if not isinstance(field, str):
        raise InvalidRequest("priority", "must be high, normal or low", value=field)
    return Priority.parse(field)
