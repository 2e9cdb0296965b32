"""Which tensor becomes which type, the parameters, the memory estimate: pure rules."""

from __future__ import annotations

import pytest

from moc.errors import InvalidRequest
from moc.learning.worker.quant_plan import (
    RUNTIME_OVERHEAD,
    QuantizeParams,
    parse_params,
    quantize_bytes,
    tensor_type,
)


@pytest.mark.parametrize(
    ("name", "shape", "target", "has_output", "expected"),
    [
        ("blk.0.attn_q.weight", (64, 64), "q4_0", True, "q4_0"),
        ("blk.0.attn_norm.weight", (64,), "q8_0", True, "f32"),
        ("blk.0.attn_q.bias", (64, 64), "q8_0", True, "keep"),
        ("output.weight", (260, 64), "q4_0", True, "q8_0"),
        ("output.weight", (260, 64), "q8_0", True, "q8_0"),
        ("token_embd.weight", (260, 64), "q4_0", True, "q4_0"),
        ("token_embd.weight", (260, 64), "q4_0", False, "q8_0"),  # tied: it is the head
        ("blk.0.ffn_down.weight", (64, 100), "q8_0", True, "keep"),  # 100 % 32 != 0
        ("position_embd.weight", (512, 64), "q8_0", True, "keep"),
        ("blk.0.ffn_gate_inp.weight", (8, 64), "q4_0", True, "keep"),
    ],
)
def test_tensor_types(
    name: str, shape: tuple[int, ...], target: str, has_output: bool, expected: str
) -> None:
    assert tensor_type(name, shape, target, has_output=has_output) == expected


def test_params() -> None:
    assert parse_params({"type": "Q8_0"}, llama_quantize=None) == QuantizeParams("q8_0")
    assert parse_params({"type": "q6_k"}, llama_quantize="/x/llama-quantize").type == "q6_k"
    with pytest.raises(InvalidRequest, match=r"params\.type: must be one of") as bad:
        parse_params({"type": "q2"}, llama_quantize=None)
    assert bad.value.details["value"] == "q2"
    with pytest.raises(InvalidRequest, match=r"needs llama\.cpp.s llama-quantize"):
        parse_params({"type": "q5_k_m"}, llama_quantize=None)
    with pytest.raises(InvalidRequest, match=r"params\.type: required"):
        parse_params({"type": 8}, llama_quantize=None)


def test_the_memory_estimate_follows_its_formula() -> None:
    gib = 1024**3
    # source + source × 8.5/16 + source × 5/8 + overhead
    assert quantize_bytes(16 * gib, "q8_0") == 16 * gib + int(16 * gib * 8.5 / 16) + 10 * gib + (
        RUNTIME_OVERHEAD
    )
    assert quantize_bytes(gib, "q4_0") < quantize_bytes(gib, "q8_0")
    assert quantize_bytes(0, "q4_0") == RUNTIME_OVERHEAD
    with pytest.raises(InvalidRequest, match="source_bytes"):
        quantize_bytes(-1, "q8_0")
    with pytest.raises(InvalidRequest, match=r"params\.type"):
        quantize_bytes(1, "f8")
