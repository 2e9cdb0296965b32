"""Recognising out-of-memory failures in a runtime's log. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable

_OOM = re.compile(
    r"out of memory|cudaMalloc failed|CUDA_ERROR_OUT_OF_MEMORY|failed to allocate .*buffer"
    r"|unable to allocate .*buffer|std::bad_alloc|Cannot allocate memory|MemoryError"
    r"|torch\.OutOfMemoryError|hipErrorOutOfMemory",
    re.IGNORECASE,
)


def oom_lines(lines: Iterable[str]) -> list[str]:
    """The lines that report an allocation failure, in order."""
    return [line for line in lines if _OOM.search(line)]
