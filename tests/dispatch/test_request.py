"""OpenAI request bodies validated at the edge: what moc checks, what it
forwards unchanged, and what it takes out."""

from __future__ import annotations

import orjson
import pytest

from moc.dispatch.request import Endpoint, parse_openai, priority_of
from moc.errors import InvalidRequest
from moc.scheduler.waiting import Priority

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}'


def test_a_plain_body_is_forwarded_byte_for_byte() -> None:
    parsed = parse_openai(Endpoint.CHAT, CHAT, None)
    assert (parsed.model, parsed.priority, parsed.stream) == ("m", Priority.NORMAL, False)
    assert parsed.body_for("m") is CHAT


def test_a_remote_name_replaces_the_model_and_keeps_the_rest() -> None:
    sent = orjson.loads(parse_openai(Endpoint.CHAT, CHAT, None).body_for("org/Model-7B"))
    assert sent["model"] == "org/Model-7B"
    assert sent["max_tokens"] == 4


def test_the_priority_field_is_removed_before_forwarding() -> None:
    body = b'{"model": "m", "prompt": "x", "priority": "low", "stream": true}'
    parsed = parse_openai(Endpoint.COMPLETION, body, None)
    assert (parsed.priority, parsed.stream) == (Priority.LOW, True)
    assert "priority" not in orjson.loads(parsed.body_for("m"))


def test_the_header_wins_over_the_field() -> None:
    body = b'{"model": "m", "prompt": "x", "priority": "low"}'
    assert parse_openai(Endpoint.COMPLETION, body, "HIGH").priority is Priority.HIGH


@pytest.mark.parametrize(
    ("endpoint", "body", "header", "field"),
    [
        (Endpoint.CHAT, b"{not json", None, "body"),
        (Endpoint.CHAT, b"[1, 2]", None, "body"),
        (Endpoint.CHAT, b'{"messages": [{"role": "user"}]}', None, "model"),
        (Endpoint.CHAT, b'{"model": "", "messages": [1]}', None, "model"),
        (Endpoint.CHAT, b'{"model": "m", "messages": []}', None, "messages"),
        (Endpoint.CHAT, b'{"model": "m"}', None, "messages"),
        (Endpoint.COMPLETION, b'{"model": "m"}', None, "prompt"),
        (Endpoint.EMBEDDING, b'{"model": "m"}', None, "input"),
        (Endpoint.EMBEDDING, b'{"model": "m", "input": "x", "stream": true}', None, "stream"),
        (Endpoint.CHAT, b'{"model": "m", "messages": [1], "stream": "yes"}', None, "stream"),
        (Endpoint.CHAT, b'{"model": "m", "messages": [1], "priority": 3}', None, "priority"),
        (Endpoint.CHAT, b'{"model": "m", "messages": [1], "priority": "top"}', None, "priority"),
        (Endpoint.CHAT, b'{"model": "m", "messages": [1]}', "urgent", "x-moc-priority"),
    ],
)
def test_a_wrong_field_is_named(
    endpoint: Endpoint, body: bytes, header: str | None, field: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_openai(endpoint, body, header)
    assert err.value.field == field


@pytest.mark.parametrize("field", [[], {}, 3, True])
def test_a_priority_of_the_wrong_type_is_named(field: object) -> None:
    with pytest.raises(InvalidRequest) as err:
        priority_of(None, field)
    assert err.value.field == "priority"
