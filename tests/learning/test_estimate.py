"""The sft memory estimate and the sizes it reads from a model's config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moc.learning import tiny_hf
from moc.learning.estimate import (
    ACTIVATION_FACTOR,
    MIB,
    RUNTIME_OVERHEAD,
    dims_from_config,
    read_dims,
    sft_bytes,
)

LLAMA_7B = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "torch_dtype": "float16",
}


def test_the_formula_adds_its_terms() -> None:
    got = sft_bytes(1000, 64, 2, 4, 100, batch=3, seq_len=10, quantized_4bit=False, overhead=0)
    assert got == 1000 * 4 + 100 * 16 + 3 * 10 * 64 * 2 * ACTIVATION_FACTOR * 4
    with_vocab = sft_bytes(1000, 64, 2, 4, 100, 3, 10, False, vocab=50, overhead=0)
    assert with_vocab - got == 3 * 10 * 50 * 12
    assert sft_bytes(1000, 64, 2, 4, 100, 3, 10, False) == got + RUNTIME_OVERHEAD


def test_a_4bit_base_costs_about_half_a_byte_a_parameter() -> None:
    full = sft_bytes(16_000, 8, 1, 2, 0, 1, 1, quantized_4bit=False, overhead=0)
    quantized = sft_bytes(16_000, 8, 1, 2, 0, 1, 1, quantized_4bit=True, overhead=0)
    assert full - 8 * 17 * 2 == 32_000
    assert quantized - 8 * 17 * 2 == 9_000


def test_the_tiny_bases_sizes_match_its_weights(tmp_path: Path) -> None:
    dims = read_dims(tiny_hf.write_tiny_base(tmp_path / "m"))
    assert (dims.hidden, dims.layers, dims.vocab) == (64, 2, tiny_hf.VOCAB)
    assert dims.params_count == sum(a.size for a in tiny_hf.weights(0).values())
    assert dims.stored_dtype_bytes == 4
    # rank × (in + out) for q, k, v, o in each of 2 layers: what the sft job reports
    assert dims.lora_params(8, ["q_proj", "k_proj", "v_proj", "o_proj"]) == 8192
    assert dims.lora_params(16, "all-linear") == 2 * 16 * (4 * 128 + 3 * 192)


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_the_adapter_count_matches_peft(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = tiny_hf.write_tiny_base(tmp_path / "m")
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(folder),
        LoraConfig(r=4, target_modules=["q_proj", "down_proj"], task_type="CAUSAL_LM"),
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert read_dims(folder).lora_params(4, ["q_proj", "down_proj"]) == trainable


def test_llama_7b_comes_out_at_its_known_size() -> None:
    dims = dims_from_config(LLAMA_7B)
    assert dims.params_count == 6_738_415_616
    assert dims.stored_dtype_bytes == 2
    lora = dims.lora_params(8, ["q_proj", "v_proj"])
    assert lora == 4_194_304  # peft's figure for this adapter
    qlora = sft_bytes(dims.params_count, 4096, 32, 2, lora, 4, 512, True, vocab=32000)
    # 3.5 GiB of 4-bit weights; without activation checkpointing, what 2,048
    # tokens keep for backward through 32 layers (8.5 GiB) is most of it
    assert 3_600 * MIB < dims.params_count * 9 // 16 < 3_700 * MIB
    assert 13_000 * MIB < qlora < 14_000 * MIB


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": None}, "'hidden_size' must be a positive integer, got None"),
        ({"num_hidden_layers": 0}, "'num_hidden_layers' must be a positive integer, got 0"),
        ({"vocab_size": "32000"}, "'vocab_size' must be a positive integer, got '32000'"),
    ],
)
def test_a_config_without_a_size_is_refused_naming_the_key(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        dims_from_config({**LLAMA_7B, **change})


def test_a_folder_without_a_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable model config"):
        read_dims(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps([1]))
    with pytest.raises(ValueError, match="not a JSON object"):
        read_dims(tmp_path)
