"""A tiny random LLaMA in Hugging Face format, written from nothing.

moc offers it as the demo catalog's ``tiny-base`` (the base an sft job gets
when none is named) and the tests fine-tune it on CPU in seconds. The daemon's
own Python need not have torch, transformers or safetensors, so this module
writes every file with the standard library and numpy:

- ``config.json``: a ``LlamaForCausalLM`` of width 64, 2 layers, 4 heads,
  feed-forward 128, 512 positions, untied input and output embeddings;
- ``model.safetensors``: the weights in float32, seeded normal noise
  (norms at one), in the safetensors layout written by hand (see
  :func:`safetensors_bytes`);
- ``generation_config.json``;
- ``tokenizer.json`` and ``tokenizer_config.json``: a byte-level vocabulary
  that ``transformers.AutoTokenizer`` loads offline and that round-trips any
  UTF-8 text exactly, with a chat template.

The vocabulary: ids 0–2 are ``<pad>``, ``<s>``, ``</s>``; ids 3–258 are the
256 bytes, each spelt as GPT-2's byte-level alphabet spells it (a printable
character per byte), so a BPE model without merges and the ByteLevel
pre-tokenizer and decoder map text to one token per UTF-8 byte and back. The
tokenizer puts ``<s>`` before a single text, as LLaMA's does.

The same seed gives the same bytes; :func:`write_tiny_base` writes a folder
once, whole (a temporary folder renamed into place), and leaves a complete
one alone.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIALS = (PAD, BOS, EOS)
BYTE_OFFSET = len(SPECIALS)  # byte b is token id BYTE_OFFSET + b
VOCAB = BYTE_OFFSET + 256
HIDDEN = 64
LAYERS = 2
HEADS = 4
INTERMEDIATE = 128
MAX_POSITIONS = 512

FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
)

# Role lines, then the content and the end-of-sequence token; the assistant's
# turn ends with ``</s>`` so a model trained on it learns to stop. Rendering a
# conversation's first n turns gives a prefix of rendering all of them, which
# lets the trainer find the assistant's tokens by rendering prefixes.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def byte_alphabet() -> list[str]:
    """GPT-2's byte-level alphabet: the character that stands for each byte.

    Printable Latin-1 bytes stand for themselves; the others are shifted to
    code points from 256 up, so every byte has a visible, distinct character
    (what tokenizers' ByteLevel pre-tokenizer produces and its decoder reads).
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars: dict[int, int] = {b: b for b in keep}
    shifted = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + shifted
            shifted += 1
    return [chr(chars[b]) for b in range(256)]


def tokenizer_json() -> dict[str, Any]:
    """tokenizers' serialized form of the byte-level tokenizer."""
    vocab = {token: i for i, token in enumerate(SPECIALS)}
    for b, char in enumerate(byte_alphabet()):
        vocab[char] = BYTE_OFFSET + b
    specials = [
        {
            "id": i,
            "content": token,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, token in enumerate(SPECIALS)
    ]
    byte_level = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    bos_id = SPECIALS.index(BOS)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": specials,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": BOS, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
            ],
            "pair": [
                {"SpecialToken": {"id": BOS, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {BOS: {"id": BOS, "ids": [bos_id], "tokens": [BOS]}},
        },
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [],
        },
    }


def tokenizer_config() -> dict[str, Any]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": None,
        "model_max_length": MAX_POSITIONS,
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }


def model_config() -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "head_dim": HIDDEN // HEADS,
        "hidden_act": "silu",
        "max_position_embeddings": MAX_POSITIONS,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "pad_token_id": SPECIALS.index(PAD),
        "bos_token_id": SPECIALS.index(BOS),
        "eos_token_id": SPECIALS.index(EOS),
        "torch_dtype": "float32",
        "use_cache": True,
    }


def generation_config() -> dict[str, Any]:
    return {
        "bos_token_id": SPECIALS.index(BOS),
        "eos_token_id": SPECIALS.index(EOS),
        "pad_token_id": SPECIALS.index(PAD),
        "do_sample": False,
    }


def weights(seed: int) -> dict[str, np.ndarray]:
    """The model's tensors by their Hugging Face names, float32."""
    rng = np.random.default_rng(seed)

    def noise(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ones() -> np.ndarray:
        return np.ones(HIDDEN, dtype=np.float32)

    tensors = {"model.embed_tokens.weight": noise(VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[f"{p}self_attn.{name}.weight"] = noise(HIDDEN, HIDDEN)
        tensors[f"{p}mlp.gate_proj.weight"] = noise(INTERMEDIATE, HIDDEN)
        tensors[f"{p}mlp.up_proj.weight"] = noise(INTERMEDIATE, HIDDEN)
        tensors[f"{p}mlp.down_proj.weight"] = noise(HIDDEN, INTERMEDIATE)
        tensors[f"{p}input_layernorm.weight"] = ones()
        tensors[f"{p}post_attention_layernorm.weight"] = ones()
    tensors["model.norm.weight"] = ones()
    # The final norm holds the last hidden state at length sqrt(HIDDEN), so at
    # 0.02 the output head could give no logit beyond about 1.3 and a tuned
    # adapter could never make one reply likely; at 1/sqrt(HIDDEN) the logits
    # start with a spread of about one.
    tensors["lm_head.weight"] = noise(VOCAB, HIDDEN, scale=HIDDEN**-0.5)
    return tensors


_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int64): "I64"}


def safetensors_bytes(tensors: dict[str, np.ndarray]) -> bytes:
    """The safetensors file of ``tensors``.

    The layout: the header's length as 8 bytes little-endian, the header (JSON:
    each tensor's dtype, shape and ``[begin, end)`` byte offsets into the data,
    plus ``__metadata__``), padded with spaces to a multiple of 8 so the data
    that follows is aligned, then each tensor's bytes, little-endian, C order.
    """
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _DTYPES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def write_files(folder: Path, seed: int) -> None:
    """Every file of the model into an existing, empty ``folder``."""
    documents = {
        "config.json": model_config(),
        "generation_config.json": generation_config(),
        "tokenizer.json": tokenizer_json(),
        "tokenizer_config.json": tokenizer_config(),
    }
    for name, document in documents.items():
        (folder / name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    (folder / "model.safetensors").write_bytes(safetensors_bytes(weights(seed)))


def write_tiny_base(folder: Path, seed: int = 0) -> Path:
    """The tiny base model at ``folder``, written if absent or incomplete.

    A complete folder is left as it is (whatever seed wrote it). Otherwise the
    model is written into a temporary sibling and renamed into place, so a
    reader never sees half a model; an incomplete folder is replaced. Two
    writers racing is harmless: the loser finds a complete folder and drops
    its own copy.
    """
    if is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        write_files(tmp, seed)
        if is_complete(folder):
            return folder
        if folder.exists():
            stale = folder.with_name(f".{folder.name}.{os.getpid()}.stale")
            folder.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:
            if not is_complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
