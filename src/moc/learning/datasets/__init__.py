"""Datasets for learning jobs: JSONL files of chat, instruction or documents
rows, checked line by line on upload (:mod:`.validate`), stored once per
content in the data dir (:mod:`.files`) with a row in SQLite (:mod:`.store`),
and handed to the learning jobs by name or id (:mod:`.service`)."""

from moc.learning.datasets.model import Dataset, Format
from moc.learning.datasets.service import DatasetService, InUse

__all__ = ["Dataset", "DatasetService", "Format", "InUse"]
