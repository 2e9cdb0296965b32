"""Answers to one choice each, merged into one answer of n choices."""

from __future__ import annotations

from typing import Any

from moc.dispatch.choices import merge


def answer(text: str, prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{text}",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": text},
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
        "timings": {"prompt_ms": 1.0},
    }


def test_choices_are_indexed_in_order_and_usage_is_summed() -> None:
    merged = merge([answer("a", 10, 4, 0), answer("b", 10, 4, 9), answer("c", 10, 3, 9)])
    assert merged["id"] == "chatcmpl-a"
    assert [(c["index"], c["message"]["content"]) for c in merged["choices"]] == [
        (0, "a"),
        (1, "b"),
        (2, "c"),
    ]
    assert merged["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 11,
        "total_tokens": 41,
        "prompt_tokens_details": {"cached_tokens": 18},
    }
    assert "timings" not in merged  # one request's figures, not the sum's


def test_answers_without_usage_merge_without_it() -> None:
    bare = [{"choices": [{"index": 0, "text": "x"}]}, {"choices": [{"index": 0, "text": "y"}]}]
    merged = merge(bare)
    assert [c["text"] for c in merged["choices"]] == ["x", "y"]
    assert [c["index"] for c in merged["choices"]] == [0, 1]
    assert "usage" not in merged
