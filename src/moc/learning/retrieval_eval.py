"""Recall@k of an index, measured the way the daemon answers queries.

Each question of :data:`~moc.learning.retrieval_set.PASSAGES` is embedded by
a :class:`~moc.learning.query_embedder.QueryEmbedder` and searched in an
:class:`~moc.learning.vectors.IndexFile`; a question counts for recall@k
when its own passage's document is among the top ``k`` hits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from moc.learning.query_embedder import QueryEmbedder
from moc.learning.retrieval_set import PASSAGES
from moc.learning.vectors import IndexFile


@dataclass(frozen=True)
class RetrievalFigures:
    questions: int
    recall_at_1: float
    recall_at_5: float
    misses_at_1: tuple[str, ...]  # the passages whose question's top hit was another's


def write_documents(path: Path) -> Path:
    """The passages as a documents dataset (JSONL: ``{"id", "source", "text"}``)."""
    path.write_text(
        "".join(
            json.dumps({"id": pid, "source": f"retrieval-set/{pid}", "text": text}) + "\n"
            for pid, text, _ in PASSAGES
        )
    )
    return path


async def evaluate(index: IndexFile, embedder: QueryEmbedder) -> RetrievalFigures:
    questions = [question for _, _, question in PASSAGES]
    vectors = await embedder.embed(questions)
    at_1 = at_5 = 0
    misses: list[str] = []
    for (pid, _, _), vector in zip(PASSAGES, vectors, strict=True):
        found = [hit.doc_id for hit in index.search(vector, 5)]
        at_1 += found[:1] == [pid]
        at_5 += pid in found
        if found[:1] != [pid]:
            misses.append(pid)
    n = len(PASSAGES)
    return RetrievalFigures(n, at_1 / n, at_5 / n, tuple(misses))
