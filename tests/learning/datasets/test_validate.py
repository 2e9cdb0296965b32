"""The line checker, without I/O: every kind of problem names its line, its
field and what was expected; chunk boundaries change nothing; the counts and
the token estimate of a valid file."""

from __future__ import annotations

import json
from typing import Any

import pytest

from moc.errors import DatasetInvalid, InvalidRequest
from moc.learning.datasets.model import Format
from moc.learning.datasets.validate import (
    MAX_ERRORS,
    LineChecker,
    Summary,
    check_format,
    check_name,
    estimate_tokens,
)

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
INSTRUCTION = {"prompt": "2+2=", "completion": "4"}
DOCUMENT = {"text": "The sky is blue.", "id": "d1", "source": "notes.txt"}


def jsonl(*rows: Any) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def check(data: bytes, fmt: Format | None = None, chunk: int | None = None) -> Summary:
    checker = LineChecker(fmt)
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        checker.feed(data[i : i + step])
    return checker.finish()


def errors(data: bytes, fmt: Format | None = None, **kw: Any) -> list[tuple[int, str, str, Any]]:
    with pytest.raises(DatasetInvalid) as caught:
        check(data, fmt, **kw)
    return [
        (e["line"], e["field"], e["expected"], e["got"]) for e in caught.value.details["errors"]
    ]


@pytest.mark.parametrize(
    ("row", "fmt"),
    [(CHAT, Format.CHAT), (INSTRUCTION, Format.INSTRUCTION), (DOCUMENT, Format.DOCUMENTS)],
)
def test_the_format_is_told_by_the_first_line(row: dict[str, Any], fmt: Format) -> None:
    summary = check(jsonl(row, row, row))
    assert summary == Summary(fmt, rows=3, tokens=summary.tokens, lines=3)
    assert summary.tokens > 0


def test_tokens_are_a_quarter_of_the_text_bytes_rounded_up_per_field() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("é") == 1  # two bytes of UTF-8
    assert check(jsonl(INSTRUCTION)).tokens == 2  # "2+2=" and "4"
    assert check(jsonl(DOCUMENT)).tokens == 4  # 16 bytes; id and source are not text
    assert check(jsonl(CHAT)).tokens == (1 + 4) + (2 + 4)  # 4 a message for its template


def test_blank_lines_crlf_and_a_last_line_without_newline_are_fine() -> None:
    data = b"\n" + jsonl(DOCUMENT) + b"   \n\r\n" + json.dumps(DOCUMENT).encode() + b"\r\n\n\n"
    assert check(data).rows == 2
    assert check(jsonl(DOCUMENT).rstrip(b"\n")).rows == 1


@pytest.mark.parametrize("chunk", [1, 2, 7, 64])
def test_chunk_boundaries_change_nothing(chunk: int) -> None:
    data = jsonl(CHAT, CHAT, {"messages": "x"}, CHAT) + "é".encode() * 3
    whole = errors(data)
    assert errors(data, chunk=chunk) == whole
    good = jsonl(*[CHAT] * 5)
    assert check(good, chunk=chunk) == check(good)


def test_an_empty_file_or_blank_lines_only_have_no_rows() -> None:
    assert errors(b"") == [(1, "$", "at least one row", "an empty file")]
    assert errors(b"\n \n") == [(2, "$", "at least one row", "blank lines only")]


def test_lines_that_are_not_utf8_json_objects() -> None:
    data = jsonl(DOCUMENT) + b"\xff\xfe\n" + b"{not json\n" + b"[1, 2]\n" + b'"text"\n'
    found = errors(data)
    assert found[0] == (2, "$", "UTF-8 text", "byte 0xff at 0")
    line, field, expected, got = found[1]
    assert (line, field, expected) == (3, "$", "one JSON value")
    assert "column" in got
    assert found[2:] == [(4, "$", "a JSON object", "array"), (5, "$", "a JSON object", "string")]


def test_an_object_of_no_known_shape_before_the_format_is_known() -> None:
    found = errors(jsonl({"question": "q", "answer": "a"}, DOCUMENT))
    assert found == [
        (
            1,
            "$",
            "an object with messages (chat), prompt and completion (instruction), "
            "or text (documents)",
            "keys answer, question",
        )
    ]


def test_every_line_is_held_to_the_format_of_the_first() -> None:
    found = errors(jsonl(DOCUMENT, INSTRUCTION))
    assert found == [(2, "text", "a non-empty string", None)]


def test_a_given_format_holds_from_the_first_line() -> None:
    assert errors(jsonl(DOCUMENT), Format.CHAT) == [(1, "messages", "an array of messages", None)]
    assert check(jsonl(DOCUMENT), Format.DOCUMENTS).rows == 1


def test_chat_problems_name_the_message_and_its_field() -> None:
    rows = [
        {"messages": {"role": "user"}},
        {"messages": []},
        {
            "messages": [
                {"role": "user", "content": "q"},
                "hi",
                {"role": "bot", "content": "a"},
                {"content": 3},
                {"role": "assistant"},
            ]
        },
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]},
    ]
    assert errors(jsonl(*rows), Format.CHAT) == [
        (1, "messages", "an array of messages", "object"),
        (2, "messages", "at least one message", "an empty array"),
        (3, "messages[1]", "an object with role and content", "string"),
        (3, "messages[2].role", "one of system, user, assistant", "'bot'"),
        (3, "messages[3].role", "one of system, user, assistant", None),
        (3, "messages[3].content", "a string", "number"),
        (3, "messages[4].content", "a string", None),
        (4, "messages", "at least one message with role assistant", None),
    ]


def test_instruction_problems() -> None:
    rows = [
        {"prompt": "p"},
        {"completion": "c"},
        {"prompt": 1, "completion": "c"},
        {"prompt": "p", "completion": "  "},
        {"prompt": "", "completion": "c"},  # an empty prompt is allowed
    ]
    assert errors(jsonl(*rows)) == [
        (1, "completion", "a non-empty string", None),
        (2, "prompt", "a string", None),
        (3, "prompt", "a string", "number"),
        (4, "completion", "a non-empty string", "an empty string"),
    ]


def test_documents_problems() -> None:
    rows = [
        {"text": None},
        {"text": "", "id": "x"},
        {"text": "t", "id": 7, "source": ["a"]},
        {"text": "t", "extra": {"kept": True}},  # other fields are kept and ignored
    ]
    assert errors(jsonl(*rows), Format.DOCUMENTS) == [
        (1, "text", "a non-empty string", "null"),
        (2, "text", "a non-empty string", "an empty string"),
        (3, "id", "a string", "number"),
        (3, "source", "a string", "array"),
    ]


def test_a_long_wrong_value_is_shown_cut_short() -> None:
    row = {"messages": [{"role": "x" * 100, "content": "c"}]}
    ((_, _, _, got),) = errors(jsonl(row))
    assert got == repr("x" * 40 + "…")


def test_a_line_over_the_limit_is_an_error_and_its_rest_is_skipped() -> None:
    checker = LineChecker(max_line=64)
    long_line = json.dumps({"text": "y" * 100}).encode()
    for piece in (jsonl(DOCUMENT), long_line[:50], long_line[50:], b"\n", jsonl(DOCUMENT)):
        checker.feed(piece)
    with pytest.raises(DatasetInvalid) as caught:
        checker.finish()
    assert caught.value.details["errors"] == [
        {"line": 2, "field": "$", "expected": "a line of at most 64 bytes", "got": "longer"}
    ]
    assert checker.rows == 2
    assert len(checker._partial) == 0  # nothing of the long line was held


def test_all_lines_are_checked_and_the_first_twenty_reported() -> None:
    data = jsonl(*[{"text": 1}] * 50, DOCUMENT)
    with pytest.raises(DatasetInvalid) as caught:
        check(data)
    err = caught.value
    assert err.code == "dataset_invalid"
    assert err.details["error_count"] == 50
    assert err.details["lines"] == 51
    assert len(err.details["errors"]) == MAX_ERRORS
    assert [e["line"] for e in err.details["errors"]] == list(range(1, MAX_ERRORS + 1))
    assert err.message.startswith("the dataset has 50 errors and was not stored: line 1: text:")
    assert err.message.endswith("; and 47 more")


def test_names_and_formats() -> None:
    assert check_name("my-data_v1.2") == "my-data_v1.2"
    for bad in ("", "a" * 65, "has space", "a/b", "ds_0123456789abcdef01234567"):
        with pytest.raises(InvalidRequest) as caught:
            check_name(bad)
        assert caught.value.field == "name"
    assert check_format(None) is None
    assert check_format("chat") is Format.CHAT
    with pytest.raises(InvalidRequest) as caught:
        check_format("csv")
    assert caught.value.message == "format: must be one of chat|instruction|documents (got 'csv')"
