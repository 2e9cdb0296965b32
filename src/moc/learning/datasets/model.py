"""A stored dataset, as the service hands it to the HTTP routes and the learning jobs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Format(StrEnum):
    """What each line of a dataset holds."""

    CHAT = "chat"  # {"messages": [{"role", "content"}, ...]}, at least one assistant message
    INSTRUCTION = "instruction"  # {"prompt", "completion"}
    DOCUMENTS = "documents"  # {"text", "id"?, "source"?}


@dataclass(frozen=True)
class Dataset:
    """One named dataset. ``path`` is its content file, shared by every dataset
    with the same content; it is never written again once it is in place."""

    id: str
    name: str
    format: Format
    path: Path
    rows: int
    bytes: int
    tokens: int  # an estimate: see moc.learning.datasets.validate.estimate_tokens
    digest: str  # "sha256:<hex>" of the file
    created_at: float  # seconds since the epoch

    @property
    def sha256(self) -> str:
        return self.digest.removeprefix("sha256:")
