"""A long-lived embedding child for the daemon's index queries.

    python -m moc.learning.worker.embed <model_folder>

Loads the sentence-transformers model once, then answers one JSON line per
request on stdin: ``{"texts": [...]}`` → ``{"vectors": [[...], ...]}``
(L2-normalized), or ``{"error": "..."}`` for a request it cannot read; the
model's own prints go to stderr, so stdout carries nothing but replies. It
exits when stdin closes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from moc.errors import MocError
from moc.learning.worker.embedders import SentenceTransformerEmbedder

MAX_TEXTS = 256


def _answer(embedder: SentenceTransformerEmbedder, line: str) -> dict[str, Any]:
    try:
        request = json.loads(line)
    except ValueError as exc:
        return {"error": f"not JSON: {exc}"}
    texts = request.get("texts") if isinstance(request, dict) else None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return {"error": "texts: must be a list of strings"}
    if len(texts) > MAX_TEXTS:
        return {"error": f"texts: at most {MAX_TEXTS} per request (got {len(texts)})"}
    return {"vectors": embedder.embed(texts).tolist()}


def serve(embedder: SentenceTransformerEmbedder, requests: TextIO, replies: TextIO) -> None:
    for line in requests:
        if line.strip():
            replies.write(json.dumps(_answer(embedder, line)) + "\n")
            replies.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m moc.learning.worker.embed <model_folder>\n")
        return 2
    replies = sys.stdout
    sys.stdout = sys.stderr  # whatever the libraries print must not reach the reply stream
    try:
        embedder = SentenceTransformerEmbedder(Path(argv[1]))
    except (MocError, OSError, ValueError) as exc:
        sys.stderr.write(f"embed: the model did not load: {exc}\n")
        return 1
    serve(embedder, sys.stdin, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
