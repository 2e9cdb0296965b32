"""How much memory an sft job needs before it starts: the ledger entry's size.

The formula (:func:`sft_bytes`), in bytes:

    base weights      params × dtype_bytes          (4-bit: params × 9/16, the
                                                     4 bits plus NF4's block scales)
  + the adapter       lora_params × 16              (fp32 weights 4 + gradients 4
                                                     + Adam's two moments 8)
  + activations       batch × seq × hidden × layers × ACTIVATION_FACTOR × dtype_bytes
  + logits            batch × seq × vocab × 12      (fp32 logits, their float copy
                                                     for the loss, and its gradient)
  + runtime           RUNTIME_OVERHEAD              (the torch process itself)

ACTIVATION_FACTOR = 17: what backward keeps per token, per layer, in units of
``hidden × dtype_bytes``. Korthikanti et al. (2022) count 34·h bytes in 16 bits
for a transformer layer without the attention scores (flash/SDPA attention
keeps none), i.e. 17 values of the layer's width; a LLaMA block's wider
gated MLP is in the same range, and frozen weights save no gradient of their
own, so the figure errs on the large side for LoRA.

RUNTIME_OVERHEAD = 448 MiB: the peak RSS of the sft child on the tiny base
(``python -m moc.learning.worker``, torch 2.13 CPU, transformers 5, peft
0.21) measured 419 MiB, of which the model and its training are under 2 MiB:
it is the interpreter with torch, transformers and peft imported. Rounded up.
On a GPU the CUDA context adds its own (a few hundred MiB) on the device;
pass ``overhead`` for that.

Pure and standard library only: the daemon sizes entries with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
ACTIVATION_FACTOR = 17
RUNTIME_OVERHEAD = 448 * MIB
ADAPTER_BYTES_PER_PARAM = 4 + 4 + 8  # fp32 weight, gradient, Adam's m and v
LOGIT_BYTES = 12
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def sft_bytes(
    params_count: int,
    hidden: int,
    layers: int,
    dtype_bytes: int,
    lora_params: int,
    batch: int,
    seq_len: int,
    quantized_4bit: bool,
    *,
    vocab: int = 0,
    overhead: int = RUNTIME_OVERHEAD,
) -> int:
    """The bytes an sft job holds at its peak (see the module's formula).

    ``dtype_bytes`` is the compute dtype's width (4 on CPU, where the worker
    trains in float32; 2 for bfloat16), which is also the base weights' width
    unless ``quantized_4bit``.
    """
    base = params_count * 9 // 16 if quantized_4bit else params_count * dtype_bytes
    adapter = lora_params * ADAPTER_BYTES_PER_PARAM
    tokens = batch * seq_len
    activations = tokens * hidden * layers * ACTIVATION_FACTOR * dtype_bytes
    logits = tokens * vocab * LOGIT_BYTES
    return base + adapter + activations + logits + overhead


@dataclass(frozen=True)
class ModelDims:
    """A causal LM's sizes, as its Hugging Face ``config.json`` gives them."""

    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    stored_dtype_bytes: int  # the checkpoint's dtype (4 when the config names none)

    @property
    def params_count(self) -> int:
        """Parameters of a LLaMA-shaped model (the attention and gated MLP
        projections, two norms a layer, the final norm, the embeddings and,
        untied, the output head); other families land close."""
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        per_layer = self.hidden * (q + 2 * kv) + q * self.hidden
        per_layer += 3 * self.hidden * self.intermediate + 2 * self.hidden
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * per_layer + self.hidden + embeddings

    def module_shape(self, module: str) -> tuple[int, int]:
        """(in, out) features of a projection by its usual name."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes = {
            "q_proj": (self.hidden, q),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }
        if module not in shapes:
            raise ValueError(f"target module {module!r} is not one of {', '.join(shapes)}")
        return shapes[module]

    def lora_params(self, rank: int, target_modules: tuple[str, ...] | list[str] | str) -> int:
        """An adapter's parameters: ``rank × (in + out)`` per targeted
        projection per layer (``"all-linear"``: all seven)."""
        modules = ALL_LINEAR if target_modules == "all-linear" else tuple(target_modules)
        per_layer = 0
        for module in modules:
            fan_in, fan_out = self.module_shape(module)
            per_layer += rank * (fan_in + fan_out)
        return per_layer * self.layers


def _int(config: dict[str, Any], key: str, path: Path) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{path}: {key!r} must be a positive integer, got {value!r}")
    return value


def dims_from_config(config: dict[str, Any], path: Path = Path("config.json")) -> ModelDims:
    """The sizes in a parsed ``config.json``; ValueError names a missing key."""
    hidden = _int(config, "hidden_size", path)
    heads = _int(config, "num_attention_heads", path)
    head_dim = config.get("head_dim") or hidden // heads
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    return ModelDims(
        hidden=hidden,
        layers=_int(config, "num_hidden_layers", path),
        vocab=_int(config, "vocab_size", path),
        intermediate=_int(config, "intermediate_size", path),
        heads=heads,
        kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=int(head_dim),
        tied=bool(config.get("tie_word_embeddings", False)),
        stored_dtype_bytes=_DTYPE_BYTES.get(str(dtype), 4),
    )


def read_dims(folder: Path) -> ModelDims:
    """The sizes of the Hugging Face model in ``folder``."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable model config ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a JSON object")
    return dims_from_config(config, path)
