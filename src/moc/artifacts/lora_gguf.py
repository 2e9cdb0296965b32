"""A PEFT LoRA adapter of a LLaMA base as a llama.cpp adapter GGUF.

llama.cpp applies an adapter file (``--lora``, or per request) to a base GGUF
converted from the same Hugging Face weights (:mod:`moc.learning.hf_to_gguf`).
The file follows llama.cpp's ``convert_lora_to_gguf.py``: architecture
``llama``, ``general.type`` ``adapter``, ``adapter.type`` ``lora``,
``adapter.lora.alpha``, and for each adapted weight ``W`` of the base (by its
GGUF name) two float32 tensors ``W.lora_a`` (``[r, in]`` in numpy's order) and
``W.lora_b`` (``[out, r]``). llama.cpp adds ``scale · alpha / r · B·A·x``.

Only numpy and the ``gguf`` package: the daemon's Python may lack torch and
safetensors, so the safetensors files are read here (with ``gguf``'s parser
of the header). The pieces both converters share (the reader, the tensor
names, the rotary row order) live here because the learning layer may import
the artifacts layer and not the other way round.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from moc.models.gguf_write import gguf_file

# Hugging Face LLaMA names → llama.cpp's (``{}`` is the block number).
_BLOCK_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_TOP_NAMES = {
    "model.embed_tokens": "token_embd",
    "model.norm": "output_norm",
    "lm_head": "output",
}
_BLOCK = re.compile(r"model\.layers\.(\d+)\.(.+)")
_LORA = re.compile(r"(.+)\.lora_([AB])\.weight")
_PEFT_PREFIX = "base_model.model."
# Modules an adapter may adapt: the projections (embeddings are refused:
# llama.cpp wants their A transposed, and moc's trainer never adapts them).
_ADAPTABLE = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}
_ADAPTABLE_TOP = {"output"}


def gguf_module(hf_module: str) -> str | None:
    """llama.cpp's name for a LLaMA module (``model.layers.3.mlp.up_proj`` →
    ``blk.3.ffn_up``), or None for one it has no name for."""
    if hf_module in _TOP_NAMES:
        return _TOP_NAMES[hf_module]
    match = _BLOCK.fullmatch(hf_module)
    if match is None or match[2] not in _BLOCK_NAMES:
        return None
    return f"blk.{match[1]}.{_BLOCK_NAMES[match[2]]}"


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """Q or K rows (outputs) reordered from Hugging Face's rotary layout to llama.cpp's.

    Hugging Face's LLaMA rotates each head's first half against its second
    half; llama.cpp's ``llama`` architecture rotates adjacent pairs. Putting
    row ``j`` of the first half and row ``j`` of the second half next to each
    other in every head makes the two compute the same thing (as
    ``LlamaModel.permute`` in llama.cpp's ``convert_hf_to_gguf.py``).
    """
    shape = w.shape
    return w.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _bf16(raw: np.ndarray) -> np.ndarray:
    # bfloat16 is the top half of a float32: widen it by shifting into place.
    return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)


_DTYPES: dict[str, str] = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as float32, by name.

    The layout: the header's length (8 bytes, little-endian), a JSON header
    with each tensor's dtype, shape and byte range, then the data.
    """
    import gguf  # heavy import; only needed when converting

    tensors: dict[str, np.ndarray] = {}
    with gguf.SafetensorsLocal(path) as entries:
        for name, entry in entries.items():
            raw = entry.mmap_bytes()
            if entry.dtype == "BF16":
                array = _bf16(raw)
            elif entry.dtype in _DTYPES:
                array = raw.view(_DTYPES[entry.dtype])
            else:
                raise ValueError(f"{path}: tensor {name} has dtype {entry.dtype}, not a float")
            tensors[name] = np.ascontiguousarray(array.reshape(entry.shape), dtype=np.float32)
    return tensors


def _check_config(config: Mapping[str, Any]) -> float:
    """The alpha llama.cpp must be given, or ValueError for what it cannot apply."""
    if config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"adapter type {config['peft_type']} is not LoRA")
    refused = {
        "use_dora": "DoRA",
        "use_qalora": "QA-LoRA",
        "alora_invocation_tokens": "activated LoRA (aLoRA)",
        "alpha_pattern": "a per-module alpha (alpha_pattern)",
        "rank_pattern": "a per-module rank (rank_pattern)",
        "modules_to_save": f"whole modules saved beside it ({config.get('modules_to_save')})",
        "trainable_token_indices": "trained token embeddings (trainable_token_indices)",
        "layer_replication": "replicated layers (layer_replication)",
        "lora_bias": "a bias on lora_B (lora_bias)",
        "fan_in_fan_out": "fan_in_fan_out weights",
    }
    for key, what in refused.items():
        if config.get(key):
            raise ValueError(f"the adapter uses {what}, which llama.cpp cannot apply")
    if config.get("bias", "none") != "none":
        raise ValueError(
            f"the adapter trains biases ({config['bias']}), which llama.cpp cannot apply"
        )
    alpha = float(config["lora_alpha"])
    # llama.cpp scales by alpha / r; rank-stabilised LoRA by alpha / sqrt(r).
    return alpha * math.sqrt(config["r"]) if config.get("use_rslora") else alpha


def _pairs(tensors: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """The A and B matrices of each adapted module, by its GGUF name."""
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for name, array in tensors.items():
        match = _LORA.fullmatch(name.removeprefix(_PEFT_PREFIX))
        if match is None:
            raise ValueError(f"adapter tensor {name} is not a LoRA A or B matrix")
        module = gguf_module(match[1])
        kind = module.rsplit(".", 1)[-1] if module else None
        if module is None or (kind not in _ADAPTABLE and module not in _ADAPTABLE_TOP):
            raise ValueError(f"the adapter adapts {match[1]}, which has no llama.cpp LoRA mapping")
        pairs.setdefault(module, {})[match[2]] = array
    for module, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise ValueError(f"the adapter has only lora_{''.join(pair)} for {module}")
        if pair["A"].ndim != 2 or pair["B"].ndim != 2 or pair["A"].shape[0] != pair["B"].shape[1]:
            raise ValueError(f"{module}'s lora_A and lora_B are not a rank-r pair")
    return pairs


def convert(adapter_dir: Path, out: Path, *, base_config: Mapping[str, Any]) -> Path:
    """Write the PEFT adapter in ``adapter_dir`` as a llama.cpp LoRA GGUF at ``out``.

    ``base_config`` is the base's ``config.json`` (for the head counts that
    order Q and K's rows). Raises ValueError for an adapter llama.cpp could
    not apply as trained (DoRA, embeddings, saved modules, …).
    """
    import gguf  # heavy import; only needed when converting

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    alpha = _check_config(config)
    pairs = _pairs(read_safetensors(adapter_dir / "adapter_model.safetensors"))
    if "output" in pairs and base_config.get("tie_word_embeddings"):
        # The base GGUF has no output matrix of its own to adapt.
        raise ValueError("the adapter adapts lm_head, which the base ties to its embeddings")
    n_head = int(base_config["num_attention_heads"])
    n_head_kv = int(base_config.get("num_key_value_heads", n_head))

    with gguf_file(out, "llama") as writer:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        for module in sorted(pairs):
            a, b = pairs[module]["A"], pairs[module]["B"]
            # Rows of B are the weight's output rows: reorder them as the base's.
            if module.endswith(".attn_q"):
                b = permute_rows(b, n_head)
            elif module.endswith(".attn_k"):
                b = permute_rows(b, n_head_kv)
            writer.add_tensor(f"{module}.weight.lora_a", np.ascontiguousarray(a))
            writer.add_tensor(f"{module}.weight.lora_b", np.ascontiguousarray(b))
    return out
