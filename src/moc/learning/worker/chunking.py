"""Documents split into overlapping chunks of characters: a pure function.

A chunk is at most ``size`` characters. Where the text goes on past a
window, the window ends after the last whitespace in its second half, so
words are not cut where that can be helped; the next window starts
``overlap`` characters before the previous one ended (and always after the
previous one started, so the split ends). Chunks are stripped of surrounding
whitespace and empty ones are dropped; ``start`` is where the chunk's text
begins in the document.
"""

from __future__ import annotations

from dataclasses import dataclass

from moc.errors import InvalidRequest


@dataclass(frozen=True)
class Chunk:
    text: str
    position: int  # 0, 1, … within its document
    start: int  # character offset of ``text`` in the document


def check_sizes(size: int, overlap: int) -> None:
    """Raises :class:`InvalidRequest` naming ``params.chunk_size`` or ``params.chunk_overlap``."""
    if size < 1:
        raise InvalidRequest("params.chunk_size", "must be ≥ 1", value=size, limit=1)
    if not 0 <= overlap < size:
        raise InvalidRequest(
            "params.chunk_overlap",
            f"must be ≥ 0 and less than chunk_size ({size})",
            value=overlap,
            limit=size - 1,
        )


def chunk_text(text: str, size: int, overlap: int) -> list[Chunk]:
    check_sizes(size, overlap)
    chunks: list[Chunk] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = max(text.rfind(c, start + size // 2, end) for c in " \n\t")
            if cut > start:
                end = cut + 1
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            offset = start + (len(piece) - len(piece.lstrip()))
            chunks.append(Chunk(stripped, len(chunks), offset))
        if end == len(text):
            break
        start = max(end - overlap, start + 1)
    return chunks
