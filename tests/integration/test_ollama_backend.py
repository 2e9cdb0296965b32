"""Ollama as a backend, end to end: a real ``moc serve`` driving a stand-in
Ollama server (``tests/doubles/ollama.py``, which follows Ollama 0.12's REST
API; Ollama itself cannot be installed here). ``MOC_TEST_OLLAMA_URL`` and
``MOC_TEST_OLLAMA_MODEL`` run the first test against a real Ollama."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.conftest import free_port
from tests.doubles.ollama import LARGE, SIZES, SMALL, FakeOllama
from tests.integration.support import Factory, load, model, start, wait_for

REAL_URL = os.environ.get("MOC_TEST_OLLAMA_URL")
REAL_MODEL = os.environ.get("MOC_TEST_OLLAMA_MODEL", SMALL)


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    server = FakeOllama(free_port()).start()
    yield server
    server.stop()


def ollama_models(url: str, *tags: str, **kw: Any) -> list[dict[str, Any]]:
    return [
        {"name": tag.replace(":", "-"), "backend": "ollama", "url": url, "served_name": tag, **kw}
        for tag in tags
    ]


def pinned_for_good(entry: dict[str, Any]) -> bool:
    at = datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00"))
    return (at - datetime.now(UTC)).days > 365


def test_load_infer_and_unload_through_ollama(
    moc_factory: Factory, fake_ollama: FakeOllama
) -> None:
    url = REAL_URL or fake_ollama.url
    tag = REAL_MODEL if REAL_URL else SMALL
    name = tag.replace(":", "-")
    moc = start(moc_factory, ollama_models(url, tag), size="2GiB")
    with httpx.Client(base_url=moc.url) as http:
        shown = load(http, name)
        assert (shown["state"], shown["backend"]) == ("ready", "ollama")
        entry = httpx.get(f"{url}/api/ps").json()["models"]
        resident = {m["model"]: m for m in entry}
        assert tag in resident
        assert pinned_for_good(resident[tag])  # moc, not Ollama's timer, decides
        if not REAL_URL:  # the measured size replaces the estimate
            wait_for(lambda: model(http, name)["reserved_bytes"] == SIZES[SMALL])

        client = openai.OpenAI(base_url=f"{moc.url}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=8
        )
        assert reply.choices[0].message.content
        pieces = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True
        )
        assert "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
        client.close()
        with ollama.Client(host=moc.url) as native:
            assert native.generate(model=name, prompt="hi", options={"num_predict": 8}).response

        unloaded = http.post(f"/v1/models/{name}/unload").json()
        assert unloaded["unloaded"] is True
        assert tag not in {m["model"] for m in httpx.get(f"{url}/api/ps").json()["models"]}
        assert model(http, name)["reserved_bytes"] is None


def test_moc_evicts_ollama_models_to_make_room(
    moc_factory: Factory, fake_ollama: FakeOllama
) -> None:
    moc = start(moc_factory, ollama_models(fake_ollama.url, SMALL, LARGE), size="1GiB")
    with httpx.Client(base_url=moc.url) as http:
        load(http, "qwen2.5-0.5b")
        load(http, "llama3.2-1b")  # 300 + 600 MiB do not fit in 0.9 GiB: the idle one goes
        assert set(fake_ollama.resident()) == {LARGE}
        assert model(http, "qwen2.5-0.5b")["state"] == "stopped"


def test_inference_does_not_unpin_and_a_restarted_ollama_gets_its_model_back(
    moc_factory: Factory, fake_ollama: FakeOllama
) -> None:
    moc = start(
        moc_factory,
        ollama_models(fake_ollama.url, SMALL),
        size="2GiB",
        runtimes={"restart_backoff_s": 0.2, "restart_backoff_max_s": 1},
    )
    name = "qwen2.5-0.5b"
    with httpx.Client(base_url=moc.url) as http:
        load(http, name)
        chat = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
        assert http.post("/v1/chat/completions", json=chat).status_code == 200
        # Ollama's OpenAI route reset the keep-alive to its default; moc pins again.
        wait_for(lambda: pinned_for_good(fake_ollama.resident()[SMALL]), timeout=10)

        fake_ollama.stop()
        wait_for(lambda: model(http, name)["state"] == "backoff", timeout=10)
        fake_ollama.start()  # an Ollama that comes back empty
        wait_for(lambda: model(http, name)["state"] == "ready", timeout=15)
        assert SMALL in fake_ollama.resident()


def test_after_kill9_moc_takes_back_what_ollama_still_holds(
    moc_factory: Factory, fake_ollama: FakeOllama
) -> None:
    moc = start(moc_factory, ollama_models(fake_ollama.url, SMALL), size="2GiB")
    with httpx.Client(base_url=moc.url) as http:
        load(http, "qwen2.5-0.5b")
    moc.kill9()
    moc.start()
    with httpx.Client(base_url=moc.url) as http:
        shown = model(http, "qwen2.5-0.5b")
        assert shown["state"] == "ready"
        assert shown["reserved_bytes"] == SIZES[SMALL]
    assert '"runtimes_adopted":1' in moc.log()


def test_a_tag_ollama_does_not_have_fails_with_the_pull_command(
    moc_factory: Factory, fake_ollama: FakeOllama
) -> None:
    moc = start(moc_factory, ollama_models(fake_ollama.url, "mistral:7b"), size="2GiB")
    with httpx.Client(base_url=moc.url) as http:
        failed = http.post("/v1/models/mistral-7b/load")
        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == "load_failed"
        assert "ollama pull mistral:7b" in failed.json()["error"]["message"]


def test_an_ollama_that_is_not_running_fails_the_load_clearly(moc_factory: Factory) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    moc = start(moc_factory, ollama_models(url, SMALL), size="2GiB")
    t0 = time.monotonic()
    with httpx.Client(base_url=moc.url) as http:
        failed = http.post("/v1/models/qwen2.5-0.5b/load")
    assert time.monotonic() - t0 < 10
    assert failed.status_code == 503
    assert "is not answering" in failed.json()["error"]["message"]
