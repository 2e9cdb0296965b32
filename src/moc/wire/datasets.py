"""A dataset as ``/v1/datasets`` answers it."""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed

# moc.learning.datasets.model.Format, as sent.
DatasetFormat = Literal["chat", "instruction", "documents"]


@closed
class Dataset(TypedDict):
    """A JSONL file for learning jobs, checked line by line when it was uploaded."""

    id: str
    """the dataset's id ("ds_" and 24 hex digits); a learning job may name it or the name"""
    name: str
    """its name: 1 to 64 letters, digits, _ . -"""
    format: DatasetFormat
    """what each row holds: chat (messages), instruction (prompt, completion) or documents (text)"""
    rows: int
    """rows in the file (blank lines are not rows)"""
    bytes: int
    """the file's size"""
    tokens: int
    """an estimate: a token per 4 bytes of UTF-8 text in the rows' text fields, rounded up per
    field, and 4 more per chat message"""
    digest: str
    """"sha256:" and the file's SHA-256 in hex; datasets with the same digest share one file"""
    created_at: str
    """when it was uploaded (UTC, ISO 8601 with milliseconds)"""


@closed
class DatasetList(TypedDict):
    """Every dataset, by name."""

    datasets: list[Dataset]


@closed
class DatasetRemoved(TypedDict):
    """The answer to a delete: the dataset as it was."""

    removed: Literal[True]
    dataset: Dataset
