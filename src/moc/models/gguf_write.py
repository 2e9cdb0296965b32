"""Writing a GGUF file whole: into a hidden partial file beside it, renamed
into place once complete, so that a reader (llama.cpp, a load in another
task) never sees half of one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gguf import GGUFWriter


@contextlib.contextmanager
def gguf_file(out: Path, arch: str) -> Iterator[GGUFWriter]:
    """A writer for ``out``: add metadata and tensors in the block; the file is
    written and put in place when it ends, and nothing is left if it raises."""
    import gguf  # heavy import; only needed when a file is written

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    try:
        yield writer
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        partial.replace(out)
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
