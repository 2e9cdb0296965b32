"""A PEFT adapter converted to llama.cpp's LoRA GGUF: llama.cpp, run as moc
runs it, with the adapter applied to the base converted the same way, answers
as transformers with PEFT does; and a server holding the adapter unapplied
applies it to the requests that ask for it and to no others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from moc.artifacts import lora_gguf
from moc.learning import hf_to_gguf, tiny_hf
from tests.learning.test_hf_to_gguf import (
    N,
    chat_ids,
    chat_text,
    hf_greedy,
    post,
    runtime,
    serving,
    sharp_base,
)
from tests.learning.worker.conftest import run_worker, write_job, write_jsonl
from tests.learning.worker.test_sft_learns import ANSWER, LEARNS, PROMPT, ROWS

pytestmark = [
    pytest.mark.slow,  # trains an adapter (seconds; torch's start is most of it)
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

HELLO = ("Say hello.\n", "Hello there!")  # the demo dataset's second row
assert {"prompt": HELLO[0], "completion": HELLO[1]} in ROWS

# llama.cpp's server with the adapter loaded and not applied. Loading it at
# scale 0 is what does that: ``lora_init_without_apply`` only keeps it off the
# context at start-up, and the server then applies each adapter at its loaded
# scale to every request that names none (moc's runtime has no flag for this).
UNAPPLIED = """
import argparse, signal, sys
import xllamacpp as xlc
p = argparse.ArgumentParser()
p.add_argument("model"); p.add_argument("lora"); p.add_argument("--port", type=int)
args = p.parse_args()
params = xlc.CommonParams()
params.model.path = args.model
params.hostnames = ["127.0.0.1"]
params.port = args.port
params.n_ctx = 512
params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 1
params.lora_adapters = [xlc.CommonAdapterLoraInfo(args.lora, 0.0)]
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
server = xlc.Server(params)
signal.sigwait({signal.SIGTERM})
sys.exit(0)
"""
# Every adapter named with its scale, also to ask for none: a request naming
# no adapter (or ``[]``) gets the loaded scales, and the server reuses the
# prompt's cached keys and values computed under the previous request's
# adapter (llama.cpp issue 26207) - the answer is then neither model's.
WITH, WITHOUT = [{"id": 0, "scale": 1.0}], [{"id": 0, "scale": 0.0}]


def complete(llama: httpx.Client, prompt: str, **fields: Any) -> str:
    body = {"prompt": prompt, "max_tokens": 40, "temperature": 0, **fields}
    return str(post(llama, "/v1/completions", body)["choices"][0]["text"])


def peft_greedy(model: Any, tokenizer: Any, prompt: str) -> str:
    ids = hf_greedy(model, tokenizer(prompt)["input_ids"], n=40)
    return str(tokenizer.decode(ids, skip_special_tokens=True))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tiny-base and an adapter trained on it to answer PROMPT with ANSWER."""
    tmp = tmp_path_factory.mktemp("trained")
    base = tiny_hf.write_tiny_base(tmp / "tiny-base")
    dataset = write_jsonl(tmp / "qa.jsonl", ROWS)
    write_job(tmp / "job", base, dataset, {**LEARNS, "seed": 0}, dataset_format="instruction")
    result = run_worker(tmp / "job")
    assert result.returncode == 0, (tmp / "job" / "worker.log").read_text()[-2000:]
    return base, Path(result.last("done")["output"]["adapter_dir"])


@pytest.fixture(scope="module")
def ggufs(trained: tuple[Path, Path]) -> tuple[Path, Path]:
    base, adapter = trained
    config = json.loads((base / "config.json").read_text())
    return (
        hf_to_gguf.convert(base, base.parent / "base.gguf"),
        lora_gguf.convert(adapter, base.parent / "adapter.gguf", base_config=config),
    )


@pytest.fixture(scope="module")
def peft(trained: tuple[Path, Path]) -> tuple[Any, Any]:
    base, adapter = trained
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    return model, AutoTokenizer.from_pretrained(base)


@pytest.fixture(scope="module")
def unapplied(ggufs: tuple[Path, Path]) -> Iterator[httpx.Client]:
    base, adapter = ggufs
    with serving(["-c", UNAPPLIED, str(base), str(adapter)], base.parent / "unapplied.log") as c:
        yield c


def test_llama_cpp_with_the_adapter_answers_as_peft(
    ggufs: tuple[Path, Path], peft: tuple[Any, Any]
) -> None:
    base, adapter = ggufs
    model, tokenizer = peft
    with serving(runtime(base, "--lora", str(adapter)), base.parent / "lora.log") as llama:
        for prompt, answer in ((PROMPT, ANSWER), HELLO):
            assert complete(llama, prompt) == answer == peft_greedy(model, tokenizer, prompt)
        listed = llama.get("/lora-adapters").json()
        assert [(a["id"], a["path"], a["scale"]) for a in listed] == [(0, str(adapter), 1.0)]


def test_an_unapplied_adapter_applies_to_the_requests_that_ask_for_it(
    unapplied: httpx.Client, peft: tuple[Any, Any]
) -> None:
    model, tokenizer = peft
    with model.disable_adapter():
        base_answer = peft_greedy(model, tokenizer, PROMPT)
    assert ANSWER not in base_answer
    assert complete(unapplied, PROMPT, lora=WITHOUT) == base_answer
    # Alternating on one prompt: each request recomputes what the last cached.
    for _ in range(2):
        assert complete(unapplied, PROMPT, lora=WITH) == ANSWER
        assert complete(unapplied, PROMPT, lora=WITHOUT) == base_answer
    assert complete(unapplied, HELLO[0], lora=WITH) == HELLO[1]


def test_a_chat_with_the_adapter_renders_and_answers_as_peft(
    unapplied: httpx.Client, peft: tuple[Any, Any]
) -> None:
    # Trained on raw prompts, the adapter's chat answers are whatever they
    # are; what matters is that both sides give the same one.
    model, tokenizer = peft
    messages = [{"role": "user", "content": PROMPT}]
    expected = chat_text(hf_greedy(model, chat_ids(tokenizer, messages)))
    body = {"messages": messages, "max_tokens": N, "temperature": 0, "lora": WITH}
    reply = post(unapplied, "/v1/chat/completions", body)["choices"][0]["message"]["content"]
    assert reply == expected


def hand_made_adapter(folder: Path, base: Path, **config: Any) -> Path:
    """A PEFT adapter of large random matrices on every projection of the tiny
    base's layer 0 (rank 4), with ``config`` over the usual settings."""
    rng = np.random.default_rng(7)
    shapes = {"self_attn.q_proj": 64, "self_attn.k_proj": 64, "self_attn.v_proj": 64}
    shapes |= {"self_attn.o_proj": 64, "mlp.gate_proj": 128, "mlp.up_proj": 128}
    tensors = {}
    for module, out in shapes.items():
        prefix = f"base_model.model.model.layers.0.{module}"
        tensors[f"{prefix}.lora_A.weight"] = (rng.standard_normal((4, 64)) * 0.3).astype("f4")
        tensors[f"{prefix}.lora_B.weight"] = (rng.standard_normal((out, 4)) * 0.3).astype("f4")
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(tiny_hf.safetensors_bytes(tensors))
    settings = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base),
        "r": 4,
        "lora_alpha": 8,
        "target_modules": sorted(module.split(".")[-1] for module in shapes),
        "layers_to_transform": [0],
        "lora_dropout": 0.0,
        "bias": "none",
    }
    (folder / "adapter_config.json").write_text(json.dumps(settings | config))
    return folder


def test_an_adapter_of_q_and_k_on_sharp_attention_matches_peft_token_for_token(
    tmp_path: Path,
) -> None:
    # The trained adapter on tiny-base would not notice Q and K's rows in the
    # wrong order (its attention is nearly even); on the sharp base it would.
    base = sharp_base(tmp_path / "sharp")
    adapter = hand_made_adapter(tmp_path / "adapter", base)
    config = json.loads((base / "config.json").read_text())
    model_gguf = hf_to_gguf.convert(base, tmp_path / "base.gguf")
    adapter_gguf = lora_gguf.convert(adapter, tmp_path / "adapter.gguf", base_config=config)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    with serving(runtime(model_gguf, "--lora", str(adapter_gguf)), tmp_path / "log") as llama:
        for prompt in (PROMPT, "The quick brown fox jumps over the lazy dog."):
            expected = hf_greedy(model, tokenizer(prompt)["input_ids"])
            body = {"prompt": prompt, "n_predict": N, "temperature": 0, "return_tokens": True}
            assert post(llama, "/completion", body)["tokens"] == expected, prompt


def test_rank_stabilised_alpha_is_rescaled_for_llama_cpp(tmp_path: Path) -> None:
    import gguf

    base = tiny_hf.write_tiny_base(tmp_path / "base")
    config = json.loads((base / "config.json").read_text())
    adapter = hand_made_adapter(tmp_path / "adapter", base, use_rslora=True)
    out = lora_gguf.convert(adapter, tmp_path / "a.gguf", base_config=config)
    field = gguf.GGUFReader(out).fields["adapter.lora.alpha"]
    # PEFT scales by alpha / sqrt(r) = 4; llama.cpp by alpha / r: alpha 16.
    assert float(field.parts[field.data[0]][0]) == 16.0


@pytest.mark.parametrize(
    ("config", "tensor", "message"),
    [
        ({"use_dora": True}, None, "DoRA"),
        ({"peft_type": "IA3"}, None, "IA3 is not LoRA"),
        ({"modules_to_save": ["lm_head"]}, None, "whole modules"),
        ({}, "base_model.model.model.embed_tokens.lora_A.weight", "model.embed_tokens"),
        ({}, "base_model.model.model.layers.0.mlp.up_proj.lora_magnitude_vector", "not a LoRA"),
    ],
)
def test_what_llama_cpp_cannot_apply_is_refused(
    tmp_path: Path, config: dict[str, Any], tensor: str | None, message: str
) -> None:
    base = tiny_hf.write_tiny_base(tmp_path / "base")
    adapter = hand_made_adapter(tmp_path / "adapter", base, **config)
    if tensor is not None:
        weights = lora_gguf.read_safetensors(adapter / "adapter_model.safetensors")
        weights[tensor] = np.zeros((4, 64), dtype=np.float32)
        (adapter / "adapter_model.safetensors").write_bytes(tiny_hf.safetensors_bytes(weights))
    base_config = json.loads((base / "config.json").read_text())
    with pytest.raises(ValueError, match=message):
        lora_gguf.convert(adapter, tmp_path / "a.gguf", base_config=base_config)
    assert not list(tmp_path.glob("*.gguf"))
