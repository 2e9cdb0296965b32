"""An sft job's dataset: rows read and tokenized, and the order they train in.

Two formats (the daemon checked the shape on upload; a row that still does
not fit fails the job with its line number, :class:`DatasetError`):

- chat, ``{"messages": [{"role", "content"}, ...]}``: rendered with the
  tokenizer's chat template; the loss falls on the assistant's turns only,
  found by rendering the conversation's prefixes (a template whose prefixes
  do not render as prefixes of the whole gets the loss on every token);
- instruction, ``{"prompt", "completion"}``: the prompt tokenized as the
  model will see it when asked (with the tokenizer's special tokens), then
  the completion and end-of-sequence; the loss falls on those.

The order is a function of (seed, epoch, step) alone (:class:`DataOrder`), so
the batch at a step is the same whether the run got there in one go or
resumed from a checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from moc.learning.worker import jsonl

IGNORE = -100  # the label of a token that carries no loss (torch's ignore_index)


class DatasetError(Exception):
    """A dataset row the job cannot train on; the message names the line."""


class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer that encoding uses."""

    eos_token_id: int | None
    pad_token_id: int | None

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss falls; else the token itself


def _field(row: dict[str, Any], name: str, line: int) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise DatasetError(f"line {line}: {name!r} must be a string, got {value!r:.80}")
    return value


def _render(tokenizer: Tokenizer, messages: list[dict[str, str]], prompt: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
    return str(text)


def _chat_segments(
    tokenizer: Tokenizer, messages: list[dict[str, str]]
) -> list[tuple[str, bool]] | None:
    """The rendered conversation as (text, carries loss) pieces, or None when
    the template's prefixes are not prefixes of the whole."""
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], prompt=True) if i else ""
        after = _render(tokenizer, messages[: i + 1], prompt=False)
        if not before.startswith(done) or not after.startswith(before):
            return None
        pieces += [(before[len(done) :], False), (after[len(before) :], True)]
        done = after
    whole = _render(tokenizer, messages, prompt=False)
    if not whole.startswith(done):
        return None
    pieces.append((whole[len(done) :], False))
    return pieces


def encode_chat(tokenizer: Tokenizer, row: dict[str, Any], line: int) -> Example:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f"line {line}: 'messages' must be a non-empty list")
    for j, message in enumerate(messages):
        if not isinstance(message, dict):
            raise DatasetError(f"line {line}: messages[{j}] must be an object")
        _field(message, "role", line)
        _field(message, "content", line)
    if not any(m["role"] == "assistant" for m in messages):
        raise DatasetError(f"line {line}: no message has role 'assistant', nothing to learn")
    segments = _chat_segments(tokenizer, messages)
    if segments is None:
        ids = tokenizer.encode(_render(tokenizer, messages, prompt=False), add_special_tokens=False)
        return Example(ids, list(ids))
    input_ids: list[int] = []
    labels: list[int] = []
    for text, loss in segments:
        ids = tokenizer.encode(text, add_special_tokens=False)
        input_ids += ids
        labels += ids if loss else [IGNORE] * len(ids)
    return Example(input_ids, labels)


def encode_instruction(tokenizer: Tokenizer, row: dict[str, Any], line: int) -> Example:
    prompt = tokenizer.encode(_field(row, "prompt", line), add_special_tokens=True)
    completion = tokenizer.encode(_field(row, "completion", line), add_special_tokens=False)
    if tokenizer.eos_token_id is not None:
        completion.append(tokenizer.eos_token_id)
    return Example(prompt + completion, [IGNORE] * len(prompt) + completion)


ENCODERS = {"chat": encode_chat, "instruction": encode_instruction}


def read_examples(path: Path, fmt: str, tokenizer: Tokenizer, seq_len: int) -> list[Example]:
    """Every row of a JSONL dataset, encoded and cut to ``seq_len`` tokens."""
    encoder = ENCODERS.get(fmt)
    if encoder is None:
        raise DatasetError(f"dataset_format {fmt!r} is not one sft trains on: chat, instruction")
    examples: list[Example] = []
    try:
        for line, row in jsonl.rows(path):
            example = encoder(tokenizer, row, line)
            cut = Example(example.input_ids[:seq_len], example.labels[:seq_len])
            if all(label == IGNORE for label in cut.labels[1:]):
                raise DatasetError(
                    f"line {line}: no token to learn within seq_len={seq_len} tokens"
                )
            examples.append(cut)
    except jsonl.RowError as exc:
        raise DatasetError(str(exc)) from None
    if not examples:
        raise DatasetError("the dataset has no rows")
    return examples


@dataclass(frozen=True)
class Position:
    """Where a step's batch starts: the epoch, and the index into that epoch's
    shuffled order."""

    epoch: int
    index: int


class DataOrder:
    """Which examples each step trains on: epoch ``e`` visits the rows in the
    permutation seeded by ``(seed, e)``, ``batch_size`` at a time (the last
    batch of an epoch may be short). Pure but for a cache of permutations.
    """

    def __init__(self, rows: int, batch_size: int, seed: int) -> None:
        self.rows = rows
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = math.ceil(rows / batch_size)
        self._permutations: dict[int, np.ndarray] = {}

    def position(self, step: int) -> Position:
        epoch, batch = divmod(step, self.steps_per_epoch)
        return Position(epoch, batch * self.batch_size)

    def batch(self, step: int) -> list[int]:
        at = self.position(step)
        order = self._permutations.get(at.epoch)
        if order is None:
            order = np.random.default_rng([self.seed, at.epoch]).permutation(self.rows)
            self._permutations = {at.epoch: order}
        return [int(i) for i in order[at.index : at.index + self.batch_size]]

    def total_steps(self, epochs: int, max_steps: int | None) -> int:
        return max_steps if max_steps is not None else epochs * self.steps_per_epoch
