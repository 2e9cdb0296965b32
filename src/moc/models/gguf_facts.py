"""The facts a memory estimate needs, read from a GGUF file's metadata.

Only the header is parsed (``gguf.GGUFReader`` memory-maps the file; tensor
data is never read). Errors name the file and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


class GgufError(ValueError):
    """The file is missing, unreadable or not a GGUF model moc understands."""


@dataclass(frozen=True)
class GgufFacts:
    architecture: str
    weight_bytes: int  # the sum of all tensor sizes as stored
    layers: int
    ctx_train: int
    embedding: int
    heads: int
    kv_heads: int
    key_dim: int  # per head
    value_dim: int  # per head
    vocab: int


def _scalar(fields: dict[str, Any], key: str) -> Any:
    field = fields.get(key)
    if field is None:
        return None
    value = field.contents()
    if isinstance(value, list):  # per-layer arrays (e.g. head_count_kv): the largest
        numbers = [v for v in value if isinstance(v, int | float)]
        return max(numbers) if numbers else None
    return value


def gguf_architecture(path: Path) -> str:
    """A GGUF file's ``general.architecture`` (a model's or an adapter's)."""
    from gguf import GGUFReader

    try:
        arch = _scalar(dict(GGUFReader(str(path), "r").fields), "general.architecture")
    except (ValueError, OSError, IndexError, KeyError) as exc:
        raise GgufError(f"{path.name}: not a readable GGUF file ({exc})") from exc
    if not isinstance(arch, str):
        raise GgufError(f"{path.name}: GGUF metadata has no general.architecture")
    return arch


def read_gguf_facts(path: Path) -> GgufFacts:
    from gguf import GGUFReader  # heavy import; only when a file is read

    try:
        reader = GGUFReader(str(path), "r")
    except FileNotFoundError as exc:
        raise GgufError(f"{path}: no such file") from exc
    except PermissionError as exc:
        raise GgufError(f"{path}: permission denied") from exc
    except (ValueError, OSError, IndexError, KeyError) as exc:
        raise GgufError(f"{path}: not a readable GGUF file ({exc})") from exc
    fields: dict[str, Any] = dict(reader.fields)
    arch = _scalar(fields, "general.architecture")
    if not isinstance(arch, str):
        raise GgufError(f"{path}: GGUF metadata has no general.architecture")

    def number(key: str, default: int | None = None) -> int:
        value = _scalar(fields, f"{arch}.{key}")
        if value is None:
            if default is None:
                raise GgufError(f"{path}: GGUF metadata has no {arch}.{key}")
            return default
        return int(value)

    embedding = number("embedding_length")
    heads = number("attention.head_count")
    head_dim = embedding // heads if heads else 0
    tokens = fields.get("tokenizer.ggml.tokens")
    return GgufFacts(
        architecture=arch,
        weight_bytes=sum(int(t.n_bytes) for t in reader.tensors),
        layers=number("block_count"),
        ctx_train=number("context_length", 0),
        embedding=embedding,
        heads=heads,
        kv_heads=number("attention.head_count_kv", heads),
        key_dim=number("attention.key_length", head_dim),
        value_dim=number("attention.value_length", head_dim),
        vocab=len(tokens.data) if tokens is not None else 0,
    )
