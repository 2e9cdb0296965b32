"""Ollama's embedding and model-management routes, and JSON mode, against a
real ``moc serve`` on its demo catalog, driven by the official ``ollama`` and
``openai`` clients (raw HTTP where a client would hide what is tested)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest

from tests.conftest import MocProcess, runtimes_using


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MocProcess]:
    """One moc on the demo catalog (no ``models:``) for the whole module."""
    proc = MocProcess(tmp_path_factory.mktemp("moc") / "data").start()
    yield proc
    assert proc.stop() == 0, proc.log()
    assert runtimes_using(proc.data_dir / "demo-models") == []


@pytest.fixture
def client(demo: MocProcess) -> Iterator[ollama.Client]:
    with ollama.Client(host=demo.url, timeout=120) as c:
        yield c


def loaded(client: ollama.Client) -> list[str]:
    return [m.model or "" for m in client.ps().models]


def ollama_error(response: httpx.Response) -> str:
    """The message of an error in Ollama's shape (a string, not OpenAI's object)."""
    body = response.json()
    assert isinstance(body["error"], str), body
    assert body["src"] == "moc"
    message: str = body["error"]
    return message


# --- embeddings ------------------------------------------------------------------
def test_embed_answers_one_vector_per_input_in_order(client: ollama.Client) -> None:
    one = client.embed(model="tiny-chat", input="hello")
    assert one.model == "tiny-chat"
    assert len(one.embeddings) == 1
    assert len(one.embeddings[0]) == 64  # the demo models' width
    assert one.prompt_eval_count
    assert one.prompt_eval_count > 0
    assert one.total_duration
    assert one.total_duration > 0

    texts = ["hello", "a longer text about llamas", "x"]
    batch = client.embed(model="tiny-chat", input=texts).embeddings
    assert len(batch) == 3
    for text, vector in zip(texts, batch, strict=True):
        alone = client.embed(model="tiny-chat", input=text).embeddings[0]
        assert vector == pytest.approx(alone, abs=1e-4)
    assert batch[0] != pytest.approx(batch[1], abs=1e-4)


def test_embed_cuts_to_dimensions_at_unit_length(client: ollama.Client) -> None:
    full = client.embed(model="tiny-chat", input="hello").embeddings[0]
    cut = client.embed(model="tiny-chat", input="hello", dimensions=8).embeddings[0]
    assert len(cut) == 8
    assert math.sqrt(sum(x * x for x in cut)) == pytest.approx(1.0)
    scale = math.sqrt(sum(x * x for x in full[:8]))
    assert cut == pytest.approx([x / scale for x in full[:8]])


def test_legacy_embeddings_answers_the_same_vector(client: ollama.Client) -> None:
    legacy = client.embeddings(model="tiny-code", prompt="hello").embedding
    assert legacy == pytest.approx(client.embed(model="tiny-code", input="hello").embeddings[0])
    # As with Ollama, no text loads the model and answers no vector.
    client.generate(model="tiny-long", keep_alive=0)
    assert "tiny-long" not in loaded(client)
    assert client.embeddings(model="tiny-long", prompt="").embedding == []
    assert client.embed(model="tiny-long", input=[]).embeddings == []
    assert "tiny-long" in loaded(client)


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/api/embed", {"input": 5}, "input"),
        ("/api/embed", {"input": ["ok", 3]}, "input.1"),
        ("/api/embed", {"input": "x", "dimensions": 0}, "dimensions"),
        ("/api/embed", {"input": "x", "dimensions": "8"}, "dimensions"),
        ("/api/embed", {"input": "x", "truncate": "yes"}, "truncate"),
        ("/api/embeddings", {"prompt": ["x"]}, "prompt"),
        ("/api/embed", {"input": "x", "model": ""}, "model"),
    ],
)
def test_bad_embedding_requests_name_the_field(
    demo: MocProcess, route: str, body: dict[str, object], field: str
) -> None:
    response = httpx.post(f"{demo.url}{route}", json={"model": "tiny-chat", **body})
    assert response.status_code == 400
    assert ollama_error(response).startswith(f"{field}: ")
    assert response.json()["details"]["field"] == field


def test_embedding_an_unknown_model_is_an_ollama_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.embed(model="nomic-embed-text", input="hi")
    assert err.value.status_code == 404
    assert "not in the catalog" in err.value.error


# --- JSON mode -------------------------------------------------------------------
def test_json_mode_answers_json_through_both_apis(client: ollama.Client, demo: MocProcess) -> None:
    options = {"num_predict": 200, "temperature": 0}
    chat = client.chat(
        model="tiny-chat",
        messages=[{"role": "user", "content": "hi"}],
        format="json",
        options=options,
    )
    assert isinstance(json.loads(chat.message.content or ""), dict)
    assert chat.done_reason == "stop"  # the grammar ended it, not the token limit
    generated = client.generate(model="tiny-chat", prompt="hi", format="json", options=options)
    assert isinstance(json.loads(generated.response), dict)
    raw = client.generate(model="tiny-chat", prompt="hi", raw=True, format="json", options=options)
    assert isinstance(json.loads(raw.response), dict)

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    shaped = client.chat(
        model="tiny-chat", messages=[{"role": "user", "content": "hi"}], format=schema
    )
    assert isinstance(json.loads(shaped.message.content or "")["n"], int)

    with openai.OpenAI(base_url=f"{demo.url}/v1", api_key="unused", max_retries=0) as oa:
        reply = oa.chat.completions.create(
            model="tiny-chat",
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_object"},
            max_tokens=200,
            temperature=0,
        )
        assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)
        vector = oa.embeddings.create(model="tiny-chat", input="hello").data[0].embedding
        assert len(vector) == 64


# --- model management -------------------------------------------------------------
def test_pull_of_a_served_model_loads_it(client: ollama.Client) -> None:
    client.generate(model="tiny-code", keep_alive=0)
    assert "tiny-code" not in loaded(client)
    assert client.pull("tiny-code").status == "success"
    assert "tiny-code" in loaded(client)

    client.generate(model="tiny-code", keep_alive=0)
    progress = list(client.pull("tiny-code", stream=True))
    assert [p.status for p in progress] == ["loading tiny-code", "success"]
    assert "tiny-code" in loaded(client)


def test_pull_of_another_model_says_where_models_come_from(client: ollama.Client) -> None:
    for stream in (False, True):
        with pytest.raises(ollama.ResponseError) as err:
            list(client.pull("llama3.2", stream=True)) if stream else client.pull("llama3.2")
        assert err.value.status_code == 404
        assert "does not download models" in err.value.error
        assert "configuration" in err.value.error


def test_delete_copy_create_push_are_refused_in_ollama_shape(client: ollama.Client) -> None:
    refused = [
        (lambda: client.delete("tiny-chat"), "does not delete models"),
        (lambda: client.copy("tiny-chat", "mine"), "does not copy models"),
        (lambda: client.create(model="mine", from_="tiny-chat"), "does not create models"),
        (lambda: client.push("tiny-chat"), "does not push models"),
    ]
    for call, message in refused:
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == 400
        assert message in err.value.error
        assert "configuration" in err.value.error
    for missing in (lambda: client.delete("nope"), lambda: client.copy("nope", "mine")):
        with pytest.raises(ollama.ResponseError) as err:
            missing()
        assert err.value.status_code == 404
    assert "tiny-chat" in [m.model for m in client.list().models]


# --- the root and unknown routes ----------------------------------------------------
def test_root_answers_as_ollama_does(demo: MocProcess) -> None:
    got = httpx.get(f"{demo.url}/")
    assert (got.status_code, got.text) == (200, "Ollama is running")
    head = httpx.head(f"{demo.url}/")
    assert (head.status_code, head.content) == (200, b"")


def test_unknown_api_routes_answer_in_ollama_shape(demo: MocProcess) -> None:
    missing = httpx.post(f"{demo.url}/api/nothing", json={})
    assert missing.status_code == 404
    assert ollama_error(missing) == "no route POST /api/nothing"
    wrong = httpx.get(f"{demo.url}/api/chat")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert "GET is not allowed on /api/chat" in ollama_error(wrong)
    # Outside /api the error keeps OpenAI's envelope.
    other = httpx.get(f"{demo.url}/v2/nothing")
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
