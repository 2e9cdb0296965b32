"""Quantize jobs, decided: the parameters, each tensor's output type, the memory estimate.

Pure functions on names, shapes and numbers (standard library only), so the
daemon validates a job and sizes its ledger entry with the same rules the
child applies.

Which tensors are quantized follows llama.cpp's ``llama-quantize``:

1. tensors of fewer than two dimensions (norms, biases) are written in f32;
2. only ``*.weight`` tensors are quantized, and never the ones llama.cpp keeps
   at full precision (position and token-type embeddings, MoE routers, SSM
   convolutions and the like: :data:`KEEP`);
3. a tensor whose rows are not a whole number of blocks (32 values for Q8_0
   and Q4_0) keeps its source type, where llama.cpp would fall back to f16;
4. the output head (``output.weight``, or ``token_embd.weight`` where the
   model ties them) is written as Q8_0 when the job asks for Q4_0: llama.cpp
   writes it as Q6_K (Q8_0 where its rows are not a multiple of 256), and the
   ``gguf`` package's numpy quantizer cannot write Q6_K, so the nearer of
   llama.cpp's two choices that it can write is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moc.errors import InvalidRequest

NUMPY_TYPES = ("q8_0", "q4_0")  # written by the gguf package in numpy
K_QUANTS = ("q4_k_m", "q5_k_m", "q6_k")  # written by llama.cpp's llama-quantize
TYPES = NUMPY_TYPES + K_QUANTS
BLOCK = {"q8_0": 32, "q4_0": 32}
# Bits per weight of each output type, block scales included (K-quant mixes: typical).
BITS_PER_WEIGHT = {"q8_0": 8.5, "q4_0": 4.5, "q4_k_m": 4.85, "q5_k_m": 5.69, "q6_k": 6.56}
# gguf.LlamaFileType values, written to general.file_type.
FILE_TYPE = {"q8_0": 7, "q4_0": 2, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
KEEP = (
    "position_embd",
    "token_types",
    "ffn_gate_inp",
    "ssm_conv1d",
    "ssm_a",
    "ssm_d",
    "time_mix",
    "attn_rel_b",
)
OUTPUT_HEAD = "output.weight"
TOKEN_EMBEDDING = "token_embd.weight"

MIB = 1024 * 1024
RUNTIME_OVERHEAD = 256 * MIB  # Python, numpy, gguf and llama.cpp's libraries and contexts


@dataclass(frozen=True)
class QuantizeParams:
    type: str


def parse_params(params: Mapping[str, Any], *, llama_quantize: str | None) -> QuantizeParams:
    """``params`` checked; ``llama_quantize`` is the tool's path, or None where it is absent.

    Raises :class:`InvalidRequest` naming ``params.type``.
    """
    value = params.get("type")
    if not isinstance(value, str):
        raise InvalidRequest(
            "params.type", f"required: one of {', '.join(TYPES)}", value=value, limit=list(TYPES)
        )
    kind = value.lower()
    if kind not in TYPES:
        raise InvalidRequest(
            "params.type", f"must be one of {', '.join(TYPES)}", value=value, limit=list(TYPES)
        )
    if kind in K_QUANTS and llama_quantize is None:
        raise InvalidRequest(
            "params.type",
            f"{kind} needs llama.cpp's llama-quantize on PATH, which is not there; "
            f"without it the types are {', '.join(NUMPY_TYPES)}",
            value=value,
            limit=list(NUMPY_TYPES),
        )
    return QuantizeParams(type=kind)


def tensor_type(name: str, shape: tuple[int, ...], target: str, *, has_output: bool) -> str:
    """The type ``name`` is written in: ``target``, ``"q8_0"``, ``"f32"`` or ``"keep"``.

    ``shape`` is numpy's (rows last), ``target`` one of :data:`NUMPY_TYPES`,
    ``has_output`` whether the model has its own ``output.weight``.
    """
    if len(shape) < 2:
        return "f32"
    if not name.endswith(".weight") or any(part in name for part in KEEP):
        return "keep"
    if shape[-1] % BLOCK[target] != 0:
        return "keep"
    is_head = name == OUTPUT_HEAD or (not has_output and name == TOKEN_EMBEDDING)
    if is_head and target == "q4_0":
        return "q8_0"
    return target


def quantize_bytes(source_bytes: int, type: str) -> int:
    """The memory a quantize job of a ``source_bytes`` GGUF file needs, at most.

    source (mapped, all of it touched) + output (``source × bits/16``: an f16
    source, so an f32 one is overestimated) + work (the largest tensor, taken
    as a quarter of the file, as f32 with its quantized copy: ``0.625 ×
    source``) + :data:`RUNTIME_OVERHEAD`. The agreement check maps source and
    output again under llama.cpp; those pages are the same file's, so they are
    the source and output terms again, not new ones.
    """
    if source_bytes < 0:
        raise InvalidRequest("source_bytes", "must be ≥ 0", value=source_bytes, limit=0)
    if type not in BITS_PER_WEIGHT:
        raise InvalidRequest("params.type", f"must be one of {', '.join(TYPES)}", value=type)
    output = int(source_bytes * BITS_PER_WEIGHT[type] / 16)
    work = source_bytes * 5 // 8
    return source_bytes + output + work + RUNTIME_OVERHEAD
