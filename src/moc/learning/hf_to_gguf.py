"""A Hugging Face LLaMA folder (like ``tiny-base``) as a float32 GGUF for llama.cpp.

So that an adapter trained on the Hugging Face base (:mod:`moc.learning.tiny_hf`)
can be served by llama.cpp on the same weights. numpy and the ``gguf``
package only, as the daemon's own Python may have no torch.

What has to agree for llama.cpp to compute what transformers computes:

- the weights, by llama.cpp's names, with Q and K's rows reordered for
  llama.cpp's rotary layout (:func:`moc.artifacts.lora_gguf.permute_rows`);
- the hyperparameters: rope base, RMS norm epsilon, head counts and size,
  and a separate output matrix unless the embeddings are tied;
- the tokenizer: only the byte-level kind tiny-base has (every byte one
  token, no merges) is converted, as llama.cpp's ``gpt2`` BPE model with the
  same token strings at the same ids, so both split text the same way;
- the chat template, copied, so a chat request renders the same prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from moc.artifacts.lora_gguf import gguf_module, permute_rows, read_safetensors
from moc.models.gguf_write import gguf_file

# llama.cpp insists on a merges list for a ``gpt2`` tokenizer, and the gguf
# writer cannot write an empty one. This merge never fires: BPE starts from
# single characters and no other merge builds ``<pad>``, so the vocabulary
# still gives one token per byte, as Hugging Face's (which has no merges).
_NO_MERGE = "<pad> <pad>"


def _weights(folder: Path) -> dict[str, np.ndarray]:
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return read_safetensors(folder / "model.safetensors")
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        tensors |= read_safetensors(folder / shard)
    return tensors


def _rope_theta(config: dict[str, Any]) -> float:
    # transformers 5 writes ``rope_parameters``; older versions ``rope_theta``
    # and ``rope_scaling``. Scaled rope variants are not converted.
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind != "default":
        raise ValueError(f"rope type {kind!r} is not supported (only the default rope)")
    return float(params.get("rope_theta", config.get("rope_theta", 10000.0)))


def _check(config: dict[str, Any]) -> None:
    if config.get("model_type") != "llama":
        raise ValueError(f"model type {config.get('model_type')!r} is not llama")
    for bias in ("attention_bias", "mlp_bias"):
        if config.get(bias):
            raise ValueError(f"{bias} is set; biases are not converted")
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError(f"activation {config['hidden_act']!r} is not silu")


def _token_type(token_id: int, specials: set[int], known: dict[int, str]) -> int:
    import gguf  # heavy import; only needed when converting

    if token_id in specials:
        return int(gguf.TokenType.CONTROL)
    return int(gguf.TokenType.NORMAL if token_id in known else gguf.TokenType.UNUSED)


def _vocab(document: dict[str, Any], vocab_size: int) -> tuple[list[str], list[int]]:
    """Token strings by id and their llama.cpp types, from ``tokenizer.json``."""
    model = document["model"]
    if model.get("type") != "BPE" or model.get("merges"):
        raise ValueError("only a byte-level BPE tokenizer without merges is converted")
    if (document.get("pre_tokenizer") or {}).get("type") != "ByteLevel":
        raise ValueError("only a ByteLevel pre-tokenizer is converted")
    known = {i: token for token, i in model["vocab"].items()}
    added = document.get("added_tokens", [])
    known |= {token["id"]: token["content"] for token in added}
    if sorted(known) != list(range(len(known))) or len(known) > vocab_size:
        raise ValueError("the tokenizer's ids are not 0..n-1 within the model's vocabulary")
    specials = {token["id"] for token in added if token.get("special")}
    # Rows of the embedding past the tokenizer's last id get placeholder tokens.
    tokens = [known.get(i, f"[PAD{i}]") for i in range(vocab_size)]
    return tokens, [_token_type(i, specials, known) for i in range(vocab_size)]


def _token_text(token: Any) -> str | None:
    # tokenizer_config.json spells a special token as its text or as an AddedToken.
    return token.get("content") if isinstance(token, dict) else token


def _wrapping(document: dict[str, Any], bos: str | None, eos: str | None) -> tuple[bool, bool]:
    """Whether the tokenizer puts BOS before a single text and EOS after it:
    llama.cpp can add those two and no other."""
    processor = document.get("post_processor") or {}
    if processor.get("type") != "TemplateProcessing":
        return False, False
    single = processor["single"]
    added = [piece["SpecialToken"]["id"] for piece in single if "SpecialToken" in piece]
    before = "SpecialToken" in single[0]
    after = "SpecialToken" in single[-1]
    if added != [bos] * before + [eos] * after:
        raise ValueError(f"the tokenizer adds {added} to a text; llama.cpp can add only BOS, EOS")
    return before, after


def _tensors(folder: Path, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """The weights by llama.cpp's names, Q and K's rows in its rotary order."""
    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    tied = bool(config.get("tie_word_embeddings", False))
    tensors: dict[str, np.ndarray] = {}
    for name, array in sorted(_weights(folder).items()):
        if name.endswith(".rotary_emb.inv_freq") or (tied and name == "lm_head.weight"):
            continue  # computed by llama.cpp / the same matrix as the embeddings
        module = gguf_module(name.removesuffix(".weight"))
        if module is None or not name.endswith(".weight"):
            raise ValueError(f"tensor {name} has no llama.cpp name")
        if module.endswith(".attn_q"):
            array = permute_rows(array, n_head)
        elif module.endswith(".attn_k"):
            array = permute_rows(array, n_head_kv)
        tensors[f"{module}.weight"] = np.ascontiguousarray(array)
    return tensors


def convert(hf_folder: Path, out: Path) -> Path:
    """Write the LlamaForCausalLM in ``hf_folder`` as a float32 GGUF at ``out``.

    Raises ValueError for what it does not convert (another architecture,
    biases, scaled rope, a tokenizer other than byte-level BPE).
    """
    import gguf  # heavy import; only needed when converting

    config = json.loads((hf_folder / "config.json").read_text())
    _check(config)
    n_head = int(config["num_attention_heads"])
    width = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or width // n_head)
    rope_theta = _rope_theta(config)
    document = json.loads((hf_folder / "tokenizer.json").read_text())
    tokens, types = _vocab(document, int(config["vocab_size"]))
    settings = json.loads((hf_folder / "tokenizer_config.json").read_text())
    specials = {key: _token_text(settings.get(key)) for key in ("bos_token", "eos_token")}
    adds_bos, adds_eos = _wrapping(document, specials["bos_token"], specials["eos_token"])
    tensors = _tensors(hf_folder, config)  # read (and refused) before a file is opened

    with gguf_file(out, "llama") as writer:
        writer.add_name(hf_folder.name)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        writer.add_vocab_size(len(tokens))
        writer.add_context_length(int(config["max_position_embeddings"]))
        writer.add_embedding_length(width)
        writer.add_block_count(int(config["num_hidden_layers"]))
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_head_count(n_head)
        writer.add_head_count_kv(int(config.get("num_key_value_heads") or n_head))
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_rope_dimension_count(head_dim)
        writer.add_rope_freq_base(rope_theta)
        writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))

        writer.add_tokenizer_model("gpt2")
        # "default": llama.cpp's generic pre-tokenizer split. With no merges the
        # split cannot change the tokens (each byte is one token whatever the
        # pieces), so it agrees with Hugging Face's unsplit ByteLevel.
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges([_NO_MERGE])
        for key, add in (
            ("bos_token", writer.add_bos_token_id),
            ("eos_token", writer.add_eos_token_id),
            ("pad_token", writer.add_pad_token_id),
        ):
            if (text := _token_text(settings.get(key))) in tokens:
                add(tokens.index(text))
        # As Hugging Face's post-processor: tiny-base's puts <s> before a text.
        writer.add_add_bos_token(adds_bos)
        writer.add_add_eos_token(adds_eos)
        if settings.get("chat_template"):
            writer.add_chat_template(settings["chat_template"])

        for name, array in tensors.items():
            writer.add_tensor(name, array)
    return out
