"""Checking a dataset's JSONL, one line at a time, with no I/O.

:class:`LineChecker` is fed the upload's bytes in chunks of any size, as they
arrive, and never holds more than one line (at most :data:`MAX_LINE_BYTES`)
of them. It checks every line, so that one upload reports all that is wrong
with a file (the first :data:`MAX_ERRORS` problems in detail, and how many
there were); :meth:`LineChecker.finish` answers the file's summary, or raises
:class:`~moc.errors.DatasetInvalid` if any line was wrong.

The rules:

- each line is UTF-8 text holding one JSON object; a line may end in
  ``\\r\\n``; blank lines (only spaces) are skipped anywhere, so a trailing
  newline, or several, is fine; a file needs at least one row;
- ``chat``: ``messages``, a non-empty array of objects each with ``role``
  (``system``, ``user`` or ``assistant``) and ``content`` (a string), at
  least one of them the assistant's;
- ``instruction``: ``prompt`` (a string) and ``completion`` (a non-empty string);
- ``documents``: ``text`` (a non-empty string), with ``id`` and ``source``
  strings where given;
- other fields are kept in the file and ignored.

Without a format given, the first line that is a JSON object with
``messages``, ``prompt``/``completion`` or ``text`` sets it, and every line is
then held to it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from moc.errors import DatasetInvalid, InvalidRequest
from moc.learning.datasets.model import Format

MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_ERRORS = 20  # reported in detail; the rest are counted
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NAME_PATTERN = f"^{NAME.pattern}$"
# Ids are "ds_" and 24 hex digits; a name of that form would make a lookup by
# "name or id" ambiguous.
ID = re.compile(r"ds_[0-9a-f]{24}")
ROLES = ("system", "user", "assistant")
# Tokens per chat message for the template around its content (role markers).
MESSAGE_OVERHEAD_TOKENS = 4
WHOLE_LINE = "$"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidRequest(
            "name",
            "must be 1 to 64 letters, digits, '_', '.' or '-'",
            value=name,
            limit=NAME_PATTERN,
        )
    if ID.fullmatch(name):
        raise InvalidRequest(
            "name", "must not have the form of a dataset id (ds_ and 24 hex digits)", value=name
        )
    return name


def check_format(value: str | None) -> Format | None:
    if value is None:
        return None
    try:
        return Format(value)
    except ValueError:
        allowed = "|".join(f.value for f in Format)
        raise InvalidRequest(
            "format", f"must be one of {allowed}", value=value, limit=allowed
        ) from None


@dataclass(frozen=True)
class LineError:
    """One problem: where (the line, from 1, and the field, JSON-path-like:
    ``messages[2].role``; ``$`` is the whole line), what was expected there,
    and what was found (a JSON type, or a short value), if anything."""

    line: int
    field: str
    expected: str
    got: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "expected": self.expected, "got": self.got}

    def __str__(self) -> str:
        got = "" if self.got is None else f" (got {self.got})"
        return f"line {self.line}: {self.field}: expected {self.expected}{got}"


@dataclass(frozen=True)
class Summary:
    """What a valid file holds."""

    format: Format
    rows: int
    tokens: int
    lines: int


# A problem found in one row, before it has a line number: (field, expected, got).
Problem = tuple[str, str, str | None]


def _type(value: Any) -> str:
    """The JSON type of a parsed value, as an error shows what it found."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _shown(value: Any) -> str:
    """A wrong value as an error shows it: a string in full up to 40 characters."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    return _type(value)


def estimate_tokens(text: str) -> int:
    """About four bytes of UTF-8 a token, as byte-level BPE vocabularies
    average on English text; rounded up, so any text is at least one."""
    return math.ceil(len(text.encode()) / 4)


def detect(row: dict[str, Any]) -> Format | None:
    if "messages" in row:
        return Format.CHAT
    if "prompt" in row or "completion" in row:
        return Format.INSTRUCTION
    if "text" in row:
        return Format.DOCUMENTS
    return None


def _string(row: dict[str, Any], key: str, *, required: bool, nonempty: bool) -> Iterator[Problem]:
    expected = "a non-empty string" if nonempty else "a string"
    if key not in row:
        if required:
            yield key, expected, None
        return
    value = row[key]
    if not isinstance(value, str):
        yield key, expected, _type(value)
    elif nonempty and not value.strip():
        yield key, expected, "an empty string"


def check_chat(row: dict[str, Any]) -> tuple[list[Problem], int]:
    """The problems of a chat row, and its token estimate."""
    if "messages" not in row:
        return [("messages", "an array of messages", None)], 0
    messages = row["messages"]
    if not isinstance(messages, list):
        return [("messages", "an array of messages", _type(messages))], 0
    if not messages:
        return [("messages", "at least one message", "an empty array")], 0
    problems: list[Problem] = []
    tokens = 0
    answered = False
    for i, message in enumerate(messages):
        at = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append((at, "an object with role and content", _type(message)))
            continue
        role = message.get("role")
        if role not in ROLES:
            got = None if "role" not in message else _shown(role)
            problems.append((f"{at}.role", "one of " + ", ".join(ROLES), got))
        answered = answered or role == "assistant"
        content = message.get("content")
        if not isinstance(content, str):
            got = None if "content" not in message else _type(content)
            problems.append((f"{at}.content", "a string", got))
        else:
            tokens += estimate_tokens(content) + MESSAGE_OVERHEAD_TOKENS
    if not answered and not problems:
        problems.append(("messages", "at least one message with role assistant", None))
    return problems, tokens


def check_instruction(row: dict[str, Any]) -> tuple[list[Problem], int]:
    problems = [
        *_string(row, "prompt", required=True, nonempty=False),
        *_string(row, "completion", required=True, nonempty=True),
    ]
    if problems:
        return problems, 0
    return problems, estimate_tokens(row["prompt"]) + estimate_tokens(row["completion"])


def check_documents(row: dict[str, Any]) -> tuple[list[Problem], int]:
    problems = [
        *_string(row, "text", required=True, nonempty=True),
        *_string(row, "id", required=False, nonempty=False),
        *_string(row, "source", required=False, nonempty=False),
    ]
    return problems, 0 if problems else estimate_tokens(row["text"])


CHECKS = {
    Format.CHAT: check_chat,
    Format.INSTRUCTION: check_instruction,
    Format.DOCUMENTS: check_documents,
}
UNKNOWN_SHAPE = (
    "an object with messages (chat), prompt and completion (instruction), or text (documents)"
)


class LineChecker:
    """The state of one upload's check: the partial line carried between
    chunks, the format once known, the counts and the errors found so far.
    Owned by the upload that feeds it; not shared."""

    def __init__(self, format: Format | None = None, max_line: int = MAX_LINE_BYTES) -> None:
        self.format = format
        self.given = format is not None
        self._max_line = max_line
        self._partial = bytearray()
        self._too_long = False  # the line being read passed max_line; its rest is skipped
        self.line = 0  # lines seen whole
        self.rows = 0
        self.tokens = 0
        self.errors: list[LineError] = []
        self.error_count = 0

    def feed(self, chunk: bytes) -> None:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._take(chunk[start:end])
            self._end_line()
            start = end + 1
        self._take(chunk[start:])

    def _take(self, piece: bytes) -> None:
        """Part of the current line: kept, unless the line is already too long."""
        if self._too_long or not piece:
            return
        if len(self._partial) + len(piece) > self._max_line:
            self._too_long = True
            self._partial.clear()
            return
        self._partial += piece

    def _end_line(self) -> None:
        self.line += 1
        if self._too_long:
            self._too_long = False
            self._error(WHOLE_LINE, f"a line of at most {self._max_line} bytes", "longer")
            return
        raw = bytes(self._partial)
        self._partial.clear()
        self.check_line(raw)

    def _error(self, field: str, expected: str, got: str | None = None) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(LineError(self.line, field, expected, got))

    def check_line(self, raw: bytes) -> None:
        """One whole line (without its newline), numbered ``self.line``."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            self._error(WHOLE_LINE, "UTF-8 text", f"byte 0x{raw[exc.start]:02x} at {exc.start}")
            return
        if not text.strip():
            return
        try:
            row = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self._error(WHOLE_LINE, "one JSON value", f"{exc.msg} at column {exc.colno}")
            return
        if not isinstance(row, dict):
            self._error(WHOLE_LINE, "a JSON object", _type(row))
            return
        if self.format is None:
            self.format = detect(row)
            if self.format is None:
                self._error(WHOLE_LINE, UNKNOWN_SHAPE, "keys " + ", ".join(sorted(row)[:5]))
                return
        problems, tokens = CHECKS[self.format](row)
        for field, expected, got in problems:
            self._error(field, expected, got)
        if not problems:
            self.rows += 1
            self.tokens += tokens

    def finish(self) -> Summary:
        """The end of the file: a last line without a newline is a line too."""
        if self._partial or self._too_long:
            self._end_line()
        if self.error_count == 0 and self.rows == 0:
            got = "blank lines only" if self.line else "an empty file"
            self.line = max(self.line, 1)
            self._error(WHOLE_LINE, "at least one row", got)
        if self.error_count:
            raise invalid(self)
        assert self.format is not None  # a row was read, so it was set
        return Summary(self.format, self.rows, self.tokens, self.line)


def invalid(checker: LineChecker) -> DatasetInvalid:
    shown = "; ".join(str(e) for e in checker.errors[:3])
    more = checker.error_count - min(3, len(checker.errors))
    tail = f"; and {more} more" if more else ""
    count = checker.error_count
    return DatasetInvalid(
        f"the dataset has {count} error{'s' if count != 1 else ''} and was not stored: "
        f"{shown}{tail}",
        errors=[e.as_dict() for e in checker.errors],
        error_count=count,
        lines=checker.line,
        format=None if checker.format is None else checker.format.value,
    )
