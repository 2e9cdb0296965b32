"""Encoding sft rows (where the loss falls) and the order they train in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from moc.learning import tiny_hf
from moc.learning.worker.sft_data import (
    IGNORE,
    DataOrder,
    DatasetError,
    encode_chat,
    encode_instruction,
    read_examples,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_base: Path) -> object:
    return AutoTokenizer.from_pretrained(tiny_base)


def learned_text(example: object) -> str:
    """The bytes of the tokens that carry a loss, as text (specials dropped)."""
    labels = [t for t in example.labels if t != IGNORE]  # type: ignore[attr-defined]
    return bytes(t - tiny_hf.BYTE_OFFSET for t in labels if t >= tiny_hf.BYTE_OFFSET).decode()


def test_a_chat_row_carries_loss_on_the_assistant_turns_only(tokenizer: object) -> None:
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Goodbye."},
        ]
    }
    example = encode_chat(tokenizer, row, 1)  # type: ignore[arg-type]
    whole = tokenizer.apply_chat_template(row["messages"], tokenize=False)  # type: ignore[attr-defined]
    assert example.input_ids == tokenizer.encode(whole, add_special_tokens=False)  # type: ignore[attr-defined]
    assert learned_text(example) == "Hello.\nGoodbye.\n"
    eos = tokenizer.eos_token_id  # type: ignore[attr-defined]
    assert example.labels.count(eos) == 2  # each reply learns to stop


def test_an_instruction_row_carries_loss_on_the_completion_and_its_end(tokenizer: object) -> None:
    example = encode_instruction(tokenizer, {"prompt": "Q?", "completion": " A."}, 1)  # type: ignore[arg-type]
    assert example.input_ids == tokenizer("Q?")["input_ids"] + tokenizer.encode(
        " A.", add_special_tokens=False
    ) + [2]  # type: ignore[operator,attr-defined]
    assert learned_text(example) == " A."
    assert example.labels[-1] == 2
    assert example.labels[:3] == [IGNORE] * 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not JSON"),
        ("[1, 2]", "line 2: a row must be a JSON object"),
        ('{"messages": []}', "line 2: 'messages' must be a non-empty list"),
        (
            '{"messages": [{"role": "user", "content": "x"}]}',
            "line 2: no message has role 'assistant'",
        ),
        ('{"messages": ["hi"]}', "line 2: messages[0] must be an object"),
    ],
)
def test_a_bad_row_is_refused_naming_its_line(
    tmp_path: Path, tokenizer: object, line: str, message: str
) -> None:
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(good) + "\n" + line + "\n")
    with pytest.raises(DatasetError, match=re.escape(message)):
        read_examples(path, "chat", tokenizer, 64)  # type: ignore[arg-type]


def test_a_row_whose_reply_starts_past_seq_len_is_refused(
    tmp_path: Path, tokenizer: object
) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "x" * 40, "completion": "y"}) + "\n")
    with pytest.raises(DatasetError, match="line 1: no token to learn within seq_len=16"):
        read_examples(path, "instruction", tokenizer, 16)  # type: ignore[arg-type]
    assert len(read_examples(path, "instruction", tokenizer, 64)[0].input_ids) == 43  # type: ignore[arg-type]


def test_the_order_visits_every_row_once_an_epoch_and_depends_on_seed_and_epoch_alone() -> None:
    order = DataOrder(rows=10, batch_size=4, seed=7)
    assert order.steps_per_epoch == 3
    epoch0 = [order.batch(s) for s in range(3)]
    assert [len(b) for b in epoch0] == [4, 4, 2]
    assert sorted(i for b in epoch0 for i in b) == list(range(10))
    epoch1 = [order.batch(s) for s in range(3, 6)]
    assert epoch1 != epoch0
    fresh = DataOrder(rows=10, batch_size=4, seed=7)
    assert fresh.batch(4) == epoch1[1]  # straight to step 4, as a resume does
    assert DataOrder(rows=10, batch_size=4, seed=8).batch(0) != epoch0[0]
    assert order.position(4).epoch == 1
    assert order.position(4).index == 4
    assert order.total_steps(epochs=2, max_steps=None) == 6
    assert order.total_steps(epochs=2, max_steps=50) == 50
