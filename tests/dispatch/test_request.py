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


def test_n_splits_into_one_choice_each_with_seeds_apart() -> None:
    body = b'{"model": "m", "prompt": "x", "n": 3, "seed": 7, "priority": "low"}'
    parsed = parse_openai(Endpoint.COMPLETION, body, None)
    assert parsed.n == 3
    parts = parsed.one_choice_each()
    sent = [orjson.loads(p.body_for("m")) for p in parts]
    assert [s.get("n") for s in sent] == [None, None, None]
    assert [s["seed"] for s in sent] == [7, 8, 9]
    assert {p.priority for p in parts} == {Priority.LOW}
    assert all(p.n == 1 and "priority" not in s for p, s in zip(parts, sent, strict=True))
    unseeded = parse_openai(Endpoint.CHAT, b'{"model": "m", "messages": [1], "n": 2.0}', None)
    assert [orjson.loads(p.body_for("m")) for p in unseeded.one_choice_each()] == [
        {"model": "m", "messages": [1]}
    ] * 2


@pytest.mark.parametrize(
    ("n", "stream", "limit"),
    [
        (0, False, 16),
        (17, False, 16),
        ("2", False, 16),
        (True, False, 16),
        (2.5, False, 16),
        (2, True, 1),
    ],
)
def test_a_wrong_n_names_the_field_the_limit_and_the_value(
    n: object, stream: bool, limit: int
) -> None:
    body = orjson.dumps({"model": "m", "messages": [1], "n": n, "stream": stream})
    with pytest.raises(InvalidRequest) as err:
        parse_openai(Endpoint.CHAT, body, None)
    assert err.value.field == "n"
    assert err.value.details["limit"] == limit
    assert f"(got {n!r})" in err.value.message


def test_n_of_one_or_null_is_forwarded_unchanged() -> None:
    for body in (
        b'{"model": "m", "prompt": "x", "n": 1}',
        b'{"model": "m", "prompt": "x", "n": null}',
    ):
        parsed = parse_openai(Endpoint.COMPLETION, body, None)
        assert parsed.n == 1
        assert parsed.body_for("m") is body


def test_seeds_of_choices_stay_in_range_and_random_stays_random() -> None:
    top = b'{"model": "m", "prompt": "x", "n": 3, "seed": 18446744073709551615}'
    parts = parse_openai(Endpoint.COMPLETION, top, None).one_choice_each()
    seeds = [orjson.loads(p.body_for("m"))["seed"] for p in parts]
    assert seeds[0] == 18446744073709551615
    assert all(0 <= s < 2**31 for s in seeds[1:])
    assert len(set(seeds)) == 3
    rand = b'{"model": "m", "prompt": "x", "n": 2, "seed": -1}'
    parts = parse_openai(Endpoint.COMPLETION, rand, None).one_choice_each()
    assert [orjson.loads(p.body_for("m"))["seed"] for p in parts] == [-1, -1]


def test_every_loaded_adapter_is_named_with_the_asked_one_applied() -> None:
    parsed = parse_openai(Endpoint.CHAT, CHAT, None)
    # a configured adapter (None, always applied), then two from the registry
    sent = orjson.loads(parsed.body_for("helper", (None, "helper", "other")))
    assert sent["model"] == "helper"
    assert sent["lora"] == [
        {"id": 0, "scale": 1.0},
        {"id": 1, "scale": 1.0},
        {"id": 2, "scale": 0.0},
    ]
    base = orjson.loads(parsed.body_for("m", (None, "helper", "other")))
    assert [x["scale"] for x in base["lora"]] == [1.0, 0.0, 0.0]
