"""``n`` choices through a real ``moc serve`` and llama.cpp, which by itself
refuses ``n`` above its slot count: moc asks for each choice on its own."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.support import Factory, metric, spec, start

pytestmark = pytest.mark.usefixtures("no_stray_runtimes")

HI = [{"role": "user", "content": "hi"}]


def test_n_choices_are_asked_one_by_one_and_merged(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(
        moc_factory, [spec(tiny_models, "a"), spec(tiny_models, "b", parallel=2)], size="1GiB"
    )
    client = openai.OpenAI(base_url=f"{moc.url}/v1", api_key="unused", max_retries=0)

    # One slot: the three choices run in turn, each queued like any request.
    reply = client.chat.completions.create(model="a", messages=HI, max_tokens=8, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(len(c.message.content or "") == 8 for c in reply.choices)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3 * 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 3 * 8
    with httpx.Client(base_url=moc.url) as http:
        assert metric(http, "moc_queue_wait_seconds_count", priority="normal") == 3

    text = client.completions.create(model="b", prompt="hello", max_tokens=6, n=2)
    assert [c.index for c in text.choices] == [0, 1]
    assert text.usage is not None
    assert text.usage.completion_tokens == 12

    # A seed gives each choice its own (seed + index): they differ, and repeat.
    seeded = [
        [
            c.message.content
            for c in client.chat.completions.create(
                model="b", messages=HI, max_tokens=12, n=2, seed=11
            ).choices
        ]
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]
    assert seeded[0][0] != seeded[0][1]
    client.close()


def test_a_wrong_n_is_refused_naming_the_field_limit_and_value(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, [spec(tiny_models, "a")])
    cases = [({"n": 2, "stream": True}, 1), ({"n": 17}, 16), ({"n": 0}, 16), ({"n": "3"}, 16)]
    for extra, limit in cases:
        body = {"model": "a", "messages": HI, "max_tokens": 4, **extra}
        response = httpx.post(f"{moc.url}/v1/chat/completions", json=body)
        assert response.status_code == 400, extra
        error = response.json()["error"]
        assert (error["param"], error["details"]["limit"]) == ("n", limit)
        assert repr(extra["n"]) in error["message"]
    # Refused at the edge: the model was never loaded for them.
    assert httpx.get(f"{moc.url}/v1/models/a").json()["state"] == "stopped"
