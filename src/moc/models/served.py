"""An adapter a model's runtime serves beside it, as the runtime is given it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# A LoRA in llama.cpp's format, beside PEFT's files in an adapter artifact.
GGUF_ADAPTER = "adapter.gguf"


@dataclass(frozen=True)
class ServedAdapter:
    """An adapter from the registry, verified, as a runtime loads it."""

    name: str  # what requests call it
    folder: Path  # its files, verified (the registry's view)
    nbytes: int  # held in the ledger with its base
