"""Tiny LLaMA-architecture GGUF models, written from nothing.

moc writes these into its data directory for the demo catalog (so a fresh
machine with no GPU and no download has models to load), and the test suite
writes them for its own use. Each model has a 260-token byte vocabulary
(``<unk>``, ``<s>``, ``</s>``, ``<0x00>`` … ``<0xFF>``, then ``▁``), ``layers``
blocks of width 64 with 4 heads, and weights rigged so that only
printable-ASCII byte tokens can win the argmax and end-of-sequence never does:
every reply is valid text of exactly ``max_tokens`` tokens. Under a grammar
(JSON mode) the grammar decides which tokens may win, and end-of-sequence
wins once it is the only one allowed, so a JSON answer can end before the limit.

Why the ``▁`` token and no space prefix: llama.cpp's SentencePiece tokenizer
writes every space as ``▁`` (U+2581) and, by default, puts one before the
text. Without a ``▁`` token it falls back to that character's three UTF-8
bytes, which read back as ``▁``, not as a space, so text did not survive a
round trip through the tokenizer. llama.cpp's grammar sampler (JSON mode,
``response_format``) starts by matching the tokens of the chat template's
generation prompt against the grammar; with the stray prefix they did not
match, and every JSON-mode request failed with "Failed to initialize samplers".

The file also declares mean pooling, so a runtime started with
``--embeddings`` serves ``/v1/embeddings`` (llama.cpp refuses OpenAI-style
embeddings from a model whose pooling is ``none``).

How the rigging works: embedding dimensions 0–31 (:data:`RIG`) are a large
constant for every token, and no attention or feed-forward output writes to
them, so they survive to the final norm with a positive value; the output
projection gives printable bytes a large positive weight on those dimensions
and everything else a large negative one. The other dimensions are small
seeded noise, which decides *which* printable byte comes next.

Why 32 dimensions and not one: GGUF's block quantizations (Q8_0, Q4_0) scale
each run of 32 values in a row by the run's largest value. A single large
constant beside small noise in one run would round the noise to nothing, and
a quantized tiny model would answer differently from its source for reasons
no real model has; a whole run of equal constants quantizes exactly, and the
noise sits in runs of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moc.models.gguf_write import gguf_file

VOCAB = 3 + 256 + 1
SPACE = "\u2581"  # SentencePiece's space
WIDTH = 64
HEADS = 4
PRINTABLE = range(0x20, 0x7F)
RIG = slice(0, 32)  # one quantization block: see the module docstring
RIG_WIDTH = 32


@dataclass(frozen=True)
class TinySpec:
    name: str
    layers: int = 2
    ffn: int = 128  # feed-forward width: the knob that sets the file size
    ctx: int = 4096  # the context length the model declares
    seed: int = 0


def _tokens() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [SPACE]
    scores = [0.0] * VOCAB
    # unknown, control ×2, byte ×256, normal (llama.cpp's token types)
    types = [2, 3, 3] + [6] * 256 + [1]
    return tokens, scores, types


def _weights(spec: TinySpec) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(spec.seed)

    def noise(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    # The rig's energy and its logit margin are those of one dimension of 4.0
    # weighted ±50, spread evenly over RIG_WIDTH dimensions.
    embd = noise(VOCAB, WIDTH)
    embd[:, RIG] = 4.0 / RIG_WIDTH**0.5
    out = noise(VOCAB, WIDTH, scale=1.0)
    out[:, RIG] = -50.0 / RIG_WIDTH**0.5
    out[[3 + b for b in PRINTABLE], RIG] = 50.0 / RIG_WIDTH**0.5
    tensors = {
        "token_embd.weight": embd,
        "output_norm.weight": np.ones(WIDTH, dtype=np.float32),
        "output.weight": out,
    }
    for i in range(spec.layers):
        attn_out = noise(WIDTH, WIDTH)
        attn_out[RIG, :] = 0.0  # nothing writes to the rig
        ffn_down = noise(WIDTH, spec.ffn)
        ffn_down[RIG, :] = 0.0
        tensors |= {
            f"blk.{i}.attn_norm.weight": np.ones(WIDTH, dtype=np.float32),
            f"blk.{i}.attn_q.weight": noise(WIDTH, WIDTH),
            f"blk.{i}.attn_k.weight": noise(WIDTH, WIDTH),
            f"blk.{i}.attn_v.weight": noise(WIDTH, WIDTH),
            f"blk.{i}.attn_output.weight": attn_out,
            f"blk.{i}.ffn_norm.weight": np.ones(WIDTH, dtype=np.float32),
            f"blk.{i}.ffn_gate.weight": noise(spec.ffn, WIDTH),
            f"blk.{i}.ffn_up.weight": noise(spec.ffn, WIDTH),
            f"blk.{i}.ffn_down.weight": ffn_down,
        }
    return tensors


def write_tiny_gguf(path: Path, spec: TinySpec) -> Path:
    """Write ``spec`` as a GGUF file at ``path`` (atomically) and return the path."""
    import gguf  # heavy import; only needed when a file is written

    with gguf_file(path, "llama") as writer:
        writer.add_name(spec.name)
        writer.add_context_length(spec.ctx)
        writer.add_embedding_length(WIDTH)
        writer.add_block_count(spec.layers)
        writer.add_feed_forward_length(spec.ffn)
        writer.add_head_count(HEADS)
        writer.add_head_count_kv(HEADS)
        writer.add_rope_dimension_count(WIDTH // HEADS)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        tokens, scores, types = _tokens()
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_unk_token_id(0)
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)
        writer.add_add_space_prefix(False)
        writer.add_pooling_type(gguf.PoolingType.MEAN)
        for name, array in _weights(spec).items():
            writer.add_tensor(name, array)
    return path
