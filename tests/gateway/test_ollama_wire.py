"""Ollama's API shapes to and from OpenAI's: request bodies, answers, the
closing tally and server-sent-event splitting."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from moc.errors import InvalidRequest
from moc.gateway import ollama_wire as wire

USER = {"role": "user", "content": "hi"}


def chat_doc(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [USER], **extra}


# --- request bodies ------------------------------------------------------------------
def test_chat_body_maps_options() -> None:
    doc = chat_doc(
        options={
            "num_predict": 64,
            "stop": ["\n", "END"],
            "seed": 7,
            "temperature": 0.2,
            "top_k": 40,
            "top_p": 0.9,
            "repeat_penalty": 1.1,
            "num_ctx": 4096,  # Ollama-only: dropped
            "mirostat": 1,
        }
    )
    assert wire.chat_body(doc, stream=False) == {
        "model": "m",
        "messages": [USER],
        "stream": False,
        "max_tokens": 64,
        "stop": ["\n", "END"],
        "seed": 7,
        "temperature": 0.2,
        "top_k": 40,
        "top_p": 0.9,
        "repeat_penalty": 1.1,
    }


@pytest.mark.parametrize("n", [-1, -2])
def test_negative_num_predict_means_no_limit(n: int) -> None:
    body = wire.chat_body(chat_doc(options={"num_predict": n, "seed": 1}), stream=False)
    assert "max_tokens" not in body
    assert body["seed"] == 1


def test_num_predict_zero_is_kept() -> None:
    assert wire.chat_body(chat_doc(options={"num_predict": 0}), False)["max_tokens"] == 0


def test_no_options_adds_nothing() -> None:
    assert wire.chat_body(chat_doc(options=None), stream=False) == {
        "model": "m",
        "messages": [USER],
        "stream": False,
    }


def test_options_must_be_an_object() -> None:
    with pytest.raises(InvalidRequest) as err:
        wire.chat_body(chat_doc(options=[1, 2]), stream=False)
    assert err.value.field == "options"


def test_non_numeric_num_predict_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as err:
        wire.chat_body(chat_doc(options={"num_predict": "10"}), stream=False)
    assert err.value.field == "options.num_predict"


def test_format_json_asks_for_a_json_object() -> None:
    body = wire.chat_body(chat_doc(format="json"), stream=False)
    assert body["response_format"] == {"type": "json_object"}


def test_format_schema_asks_for_a_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    _, body = wire.generate_body({"model": "m", "prompt": "p", "format": schema}, stream=False)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "format", "schema": schema},
    }


def test_empty_format_is_no_format() -> None:
    assert "response_format" not in wire.chat_body(chat_doc(format=""), stream=False)


@pytest.mark.parametrize("fmt", ["yaml", 3, ["json"]])
def test_a_bad_format_is_an_invalid_request_naming_the_field(fmt: Any) -> None:
    with pytest.raises(InvalidRequest) as err:
        wire.chat_body(chat_doc(format=fmt), stream=False)
    assert err.value.field == "format"
    assert err.value.details["value"] == fmt
    assert "format" in str(err.value)


def test_chat_body_keeps_roles_tool_calls_and_tools() -> None:
    call = {"function": {"name": "f", "arguments": {"x": 1}}}
    tools = [{"type": "function", "function": {"name": "f"}}]
    doc = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "content": "42"},
        ],
        "tools": tools,
    }
    body = wire.chat_body(doc, stream=False)
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "42"},
    ]
    assert body["tools"] == tools


@pytest.mark.parametrize("bad", ["hello", {"content": "no role"}, {"role": 3}])
def test_a_bad_message_names_its_index(bad: Any) -> None:
    with pytest.raises(InvalidRequest) as err:
        wire.chat_body({"model": "m", "messages": [USER, bad]}, stream=False)
    assert err.value.field == "messages.1"


def test_messages_must_be_a_list() -> None:
    with pytest.raises(InvalidRequest) as err:
        wire.chat_body({"model": "m", "messages": "hi"}, stream=False)
    assert err.value.field == "messages"


def test_stream_asks_for_usage() -> None:
    body = wire.chat_body(chat_doc(), stream=True)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "stream_options" not in wire.chat_body(chat_doc(), stream=False)
    _, gen = wire.generate_body({"model": "m", "prompt": "p", "raw": True}, stream=True)
    assert gen["stream_options"] == {"include_usage": True}
    _, gen = wire.generate_body({"model": "m", "prompt": "p"}, stream=True)
    assert gen["stream_options"] == {"include_usage": True}


def test_raw_generate_goes_to_completions_with_the_prompt() -> None:
    doc = {
        "model": "m",
        "prompt": "[INST] hi [/INST]",
        "raw": True,
        "system": "ignored when raw",
        "suffix": "END",
        "options": {"num_predict": 5},
    }
    path, body = wire.generate_body(doc, stream=False)
    assert path == "/completions"
    assert body == {
        "model": "m",
        "prompt": "[INST] hi [/INST]",
        "stream": False,
        "suffix": "END",
        "max_tokens": 5,
    }


def test_raw_generate_with_a_format_carries_llama_cpps_json_schema_too() -> None:
    doc = {"model": "m", "prompt": "p", "raw": True, "format": "json"}
    _, body = wire.generate_body(doc, stream=False)
    assert body["response_format"] == {"type": "json_object"}
    assert body["json_schema"] == {"type": "object"}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    _, body = wire.generate_body({**doc, "format": schema}, stream=False)
    assert body["json_schema"] == schema
    _, templated = wire.generate_body({**doc, "raw": False}, stream=False)
    assert "json_schema" not in templated  # chat completions read response_format


def test_generate_with_system_becomes_chat_messages() -> None:
    doc = {"model": "m", "prompt": "hi", "system": "be brief", "options": {"temperature": 0}}
    path, body = wire.generate_body(doc, stream=False)
    assert path == "/chat/completions"
    assert body == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
        "stream": False,
        "temperature": 0,
    }


def test_generate_without_system_is_one_user_message() -> None:
    path, body = wire.generate_body({"model": "m", "prompt": "hi"}, stream=False)
    assert path == "/chat/completions"
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_generate_prompt_must_be_a_string() -> None:
    with pytest.raises(InvalidRequest) as err:
        wire.generate_body({"model": "m", "prompt": ["a"]}, stream=False)
    assert err.value.field == "prompt"


# --- answers -----------------------------------------------------------------------------
def parse_iso(text: str) -> datetime:
    assert text.endswith("Z")
    return datetime.fromisoformat(text[:-1] + "+00:00")


def test_now_iso_is_utc_with_a_z() -> None:
    stamp = parse_iso(wire.now_iso())
    assert abs(stamp - datetime.now(UTC)) < timedelta(seconds=5)


def test_answer_for_a_whole_chat_completion() -> None:
    tally = wire.Tally()
    doc = {
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "hello",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x": 1}'},
                        },
                        {"id": "call_2", "function": {"name": "g", "arguments": "not json"}},
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }
    out = wire.answer(doc, "m", chat=True, tally=tally)
    assert out["model"] == "m"
    parse_iso(out["created_at"])
    assert out["message"] == {
        "role": "assistant",
        "content": "hello",
        "tool_calls": [
            {"function": {"name": "f", "arguments": {"x": 1}}},
            {"function": {"name": "g", "arguments": {"_raw": "not json"}}},
        ],
    }
    assert out["done"] is False
    assert "response" not in out
    assert (tally.prompt_tokens, tally.completion_tokens) == (11, 3)
    assert tally.done_reason == "tool_calls"


def test_answer_for_generate_gives_a_response() -> None:
    doc = {"choices": [{"message": {"role": "assistant", "content": "hey"}}]}
    out = wire.answer(doc, "m", chat=False, tally=wire.Tally())
    assert out["response"] == "hey"
    assert "message" not in out
    assert out["done"] is False


def test_answer_for_a_streamed_chunk_with_a_delta() -> None:
    doc = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "He"}}]}
    tally = wire.Tally()
    chat = wire.answer(doc, "m", chat=True, tally=tally)
    assert chat["message"] == {"role": "assistant", "content": "He"}
    assert wire.has_content(chat)
    assert wire.answer(doc, "m", chat=False, tally=tally)["response"] == "He"
    assert tally.done_reason == "stop"  # no finish_reason yet: the default


def test_answer_for_a_completions_text_choice() -> None:
    doc = {"object": "text_completion", "choices": [{"index": 0, "text": "abc"}]}
    out = wire.answer(doc, "m", chat=False, tally=wire.Tally())
    assert out["response"] == "abc"
    empty = {"choices": [{"index": 0, "text": None, "finish_reason": "length"}]}
    assert wire.answer(empty, "m", chat=False, tally=wire.Tally())["response"] == ""


def test_answer_with_no_choices_is_empty() -> None:
    out = wire.answer({"choices": []}, "m", chat=True, tally=wire.Tally())
    assert out["message"] == {"role": "assistant", "content": ""}


def test_has_content() -> None:
    role_only = {"choices": [{"delta": {"role": "assistant"}}]}
    assert not wire.has_content(wire.answer(role_only, "m", chat=True, tally=wire.Tally()))
    assert not wire.has_content(wire.answer(role_only, "m", chat=False, tally=wire.Tally()))
    tool = {"choices": [{"delta": {"tool_calls": [{"function": {"name": "f"}}]}}]}
    piece = wire.answer(tool, "m", chat=True, tally=wire.Tally())
    assert piece["message"]["tool_calls"] == [{"function": {"name": "f", "arguments": {}}}]
    assert wire.has_content(piece)
    assert wire.has_content({"response": "x"})
    assert not wire.has_content({"response": ""})
    assert wire.has_content({"message": {"content": "x"}})
    assert not wire.has_content({"message": {"content": ""}})


# --- the tally and the closing object -------------------------------------------------
def test_tally_absorbs_usage_timings_and_finish_reason() -> None:
    tally = wire.Tally(started=time.monotonic() - 2.0, load_s=0.25)
    tally.absorb({"choices": [{"delta": {"content": "a"}, "finish_reason": None}]})
    assert tally.done_reason == "stop"
    tally.absorb({"choices": [{"delta": {}, "finish_reason": "length"}]})
    tally.absorb(
        {
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 34},
            "timings": {"prompt_ms": 12.5, "predicted_ms": 250.0},
        }
    )
    tally.absorb({"usage": None, "timings": "n/a"})  # ignored, nothing lost
    final = tally.final()
    assert final["done"] is True
    assert final["done_reason"] == "length"
    assert final["prompt_eval_count"] == 12
    assert final["eval_count"] == 34
    assert final["prompt_eval_duration"] == 12_500_000
    assert final["eval_duration"] == 250_000_000
    assert final["load_duration"] == 250_000_000
    assert 2_000_000_000 <= final["total_duration"] < 62_000_000_000
    assert all(isinstance(final[k], int) for k in final if k.endswith(("duration", "count")))


def test_tally_without_figures_reports_zeros() -> None:
    final = wire.Tally().final()
    assert final["prompt_eval_count"] == final["eval_count"] == 0
    assert final["prompt_eval_duration"] == final["eval_duration"] == 0
    assert final["load_duration"] == 0
    assert final["done_reason"] == "stop"


def test_closing_ends_a_chat_stream() -> None:
    tally = wire.Tally()
    tally.absorb({"usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    out = wire.closing("m", chat=True, tally=tally)
    assert out["model"] == "m"
    parse_iso(out["created_at"])
    assert out["message"] == {"role": "assistant", "content": ""}
    assert "response" not in out
    assert out["done"] is True
    assert out["done_reason"] == "stop"
    assert (out["prompt_eval_count"], out["eval_count"]) == (3, 4)
    assert {"total_duration", "load_duration", "prompt_eval_duration", "eval_duration"} <= set(out)


def test_closing_ends_a_generate_stream() -> None:
    out = wire.closing("m", chat=False, tally=wire.Tally())
    assert out["response"] == ""
    assert "message" not in out
    assert out["done"] is True


# --- server-sent events --------------------------------------------------------------------
def test_sse_events_split_across_chunks() -> None:
    buffer = bytearray()
    assert wire.sse_events(buffer, b'data: {"a"') == []
    assert wire.sse_events(buffer, b':1}\n\ndata: {"b":2}\n') == [b'{"a":1}']
    assert wire.sse_events(buffer, b"\ndata: [DO") == [b'{"b":2}']
    assert wire.sse_events(buffer, b"NE]\r\n\r\n") == [b"[DONE]"]
    assert buffer == bytearray()


def test_sse_events_several_in_one_chunk_with_crlf() -> None:
    buffer = bytearray()
    chunk = b"data: 1\r\n\r\ndata:2\r\n\r\ndata: [DONE]\r\n\r\ndata: partial"
    assert wire.sse_events(buffer, chunk) == [b"1", b"2", b"[DONE]"]
    assert bytes(buffer) == b"data: partial"


def test_sse_events_ignore_other_fields_and_comments() -> None:
    buffer = bytearray()
    chunk = b": keep-alive\n\nevent: message\nid: 4\ndata: x\n\nretry: 100\n\n"
    assert wire.sse_events(buffer, chunk) == [b"x"]
    assert buffer == bytearray()


def test_sse_events_split_inside_an_lf_separator() -> None:
    buffer = bytearray()
    assert wire.sse_events(buffer, b"data: 1\n") == []
    assert wire.sse_events(buffer, b"\n") == [b"1"]


def test_sse_events_split_inside_a_crlf_separator() -> None:
    buffer = bytearray()
    assert wire.sse_events(buffer, b"data: [DONE]\r\n\r") == []
    assert wire.sse_events(buffer, b"\n") == [b"[DONE]"]


def test_images_are_refused_rather_than_dropped() -> None:
    with pytest.raises(InvalidRequest) as err:
        wire.generate_body({"model": "m", "prompt": "p", "images": ["aGk="]}, stream=False)
    assert err.value.field == "images"
    message = {"role": "user", "content": "hi", "images": ["aGk="]}
    with pytest.raises(InvalidRequest) as err:
        wire.chat_body({"model": "m", "messages": [message]}, stream=False)
    assert err.value.field == "messages.0.images"


def test_embeddings_come_back_in_the_order_of_the_inputs() -> None:
    answer = {
        "data": [
            {"index": 1, "embedding": [0.0, 1.0]},
            {"index": 0, "embedding": [1.0, 0.0]},
        ],
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }
    out = wire.embed_answer(answer, "m", None, wire.Tally(load_s=0.5))
    assert out["embeddings"] == [[1.0, 0.0], [0.0, 1.0]]
    assert (out["model"], out["prompt_eval_count"], out["load_duration"]) == ("m", 5, 500_000_000)
    assert set(out) == {
        "model",
        "embeddings",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
    }


def test_dimensions_cut_and_rescale_and_a_longer_ask_changes_nothing() -> None:
    answer = {"data": [{"index": 0, "embedding": [3.0, 4.0, 12.0]}]}
    assert wire.vectors(answer, 2) == [[0.6, 0.8]]
    assert wire.vectors(answer, 3) == wire.vectors(answer, 9) == [[3.0, 4.0, 12.0]]


def test_embed_input_is_a_text_or_a_list_of_texts() -> None:
    assert wire.embed_inputs({"input": "a"}) == ["a"]
    assert wire.embed_inputs({"input": ["a", "b"]}) == ["a", "b"]
    assert wire.embed_inputs({}) == wire.embed_inputs({"input": ""}) == []
    assert wire.embed_dimensions({"dimensions": 8.0, "truncate": False}) == 8
