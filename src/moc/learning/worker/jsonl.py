"""The rows of a dataset file, for a job's child: one JSON object a line,
blank lines skipped. The daemon checked the file when it was uploaded; a row
that is not an object now means the file changed, and names its line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class RowError(ValueError):
    """A line that is not a JSON object: which (``line``), and why (``problem``)."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


def rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for every row of the file."""
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError as exc:
                raise RowError(number, f"not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise RowError(number, "a row must be a JSON object")
            yield number, row
