"""The tiny base converted to GGUF: llama.cpp, run as moc runs it (the
xllamacpp runtime in a child process), tokenizes, continues a prompt and
renders a chat exactly as transformers does on the Hugging Face folder."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from moc.learning import hf_to_gguf, tiny_hf
from moc.learning.tiny_hf import write_tiny_base
from tests.conftest import free_port

PROMPTS = ("What is the answer?\n", "Say hello.\n", "The quick brown fox")
TEXTS = ("Hello, wörld!", "tabs\tand  spaces \n", "emoji 🙂 ß", "<s>specials</s> inside", "")
CHAT = [{"role": "user", "content": "What is the answer?\n"}]
N = 24  # tokens generated per comparison


@contextmanager
def serving(argv: list[str], log: Path, timeout: float = 30) -> Iterator[httpx.Client]:
    """A llama.cpp server started as ``python <argv> --port P``, until the block ends."""
    port = free_port()
    with log.open("ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, *argv, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the runtime exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the runtime was not healthy in {timeout}s:\n{log.read_text()}")
            time.sleep(0.05)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


def runtime(model: Path, *flags: str) -> list[str]:
    """moc's xllamacpp runtime command line, on one thread (the machine is shared)."""
    argv = ["-m", "moc.backends.xllamacpp_server", "--model", str(model), "-c", "512", "-t", "1"]
    return [*argv, *flags]


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def hf_greedy(model: Any, ids: list[int], n: int = N) -> list[int]:
    """transformers' greedy continuation of ``ids`` (with the end-of-sequence
    token when it stopped on one, as llama.cpp's token list has it)."""
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)
    return list(out[0][len(ids) :].tolist())


def chat_text(ids: list[int]) -> str:
    """The reply llama.cpp's chat endpoint gives for the tiny vocabulary's ``ids``.

    As transformers decodes (specials dropped, bytes that are not UTF-8 as
    U+FFFD), except that a character cut off by the token limit is left out:
    the chat endpoint's reply passes through llama.cpp's chat parser, which
    keeps whole characters only (``/v1/completions`` sends the U+FFFD).
    """
    raw = bytes(i - tiny_hf.BYTE_OFFSET for i in ids if i >= tiny_hf.BYTE_OFFSET)
    for back in range(1, min(4, len(raw)) + 1):
        lead = raw[-back]
        if lead & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            length = next((n for n, top in ((2, 0xE0), (3, 0xF0), (4, 0xF8)) if lead < top), 1)
            if 0xC0 <= lead < 0xF8 and length > back:
                raw = raw[:-back]
            break
    return raw.decode("utf-8", errors="replace")


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def sharp_base(folder: Path) -> Path:
    """tiny-base with Q and K scaled up 25 times.

    tiny-base's Q and K are so small that every head attends almost evenly
    to every position, so its output hardly depends on the rotary embedding:
    converted with Q and K in the wrong order, or the wrong rope base, it
    still gives the same tokens. Here attention is sharp and they would not.
    """
    write_tiny_base(folder, seed=1)
    weights = tiny_hf.weights(1)
    for name in weights:
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            weights[name] *= 25
    (folder / "model.safetensors").write_bytes(tiny_hf.safetensors_bytes(weights))
    return folder


@dataclass
class Pair:
    """The same model in transformers and in llama.cpp."""

    model: Any
    tokenizer: Any
    llama: httpx.Client


@pytest.fixture(scope="module", params=["tiny-base", "sharp"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp(request.param)
    hf = (
        write_tiny_base(folder / "hf")
        if request.param == "tiny-base"
        else sharp_base(folder / "hf")
    )
    model = hf_to_gguf.convert(hf, folder / "model.gguf")
    with serving(runtime(model), folder / "runtime.log") as client:
        yield Pair(
            AutoModelForCausalLM.from_pretrained(hf), AutoTokenizer.from_pretrained(hf), client
        )


def test_llama_cpp_tokenizes_as_hugging_face(pair: Pair) -> None:
    llama, tokenizer = pair.llama, pair.tokenizer
    for sample in TEXTS:
        ids = post(llama, "/tokenize", {"content": sample, "add_special": True})["tokens"]
        assert ids == tokenizer(sample)["input_ids"], sample  # <s> first, one token a byte
        assert post(llama, "/detokenize", {"tokens": ids[1:]})["content"] == sample


def test_llama_cpp_continues_a_prompt_as_transformers(pair: Pair) -> None:
    # The weights are random, so the continuations are arbitrary bytes: any
    # mismatch in the architecture (rotary layout and base on the sharp
    # model, the untied output) shows within a few tokens. All N match.
    model, tokenizer, llama = pair.model, pair.tokenizer, pair.llama
    for prompt in PROMPTS:
        expected = hf_greedy(model, tokenizer(prompt)["input_ids"])
        body = {"prompt": prompt, "n_predict": N, "temperature": 0, "return_tokens": True}
        assert post(llama, "/completion", body)["tokens"] == expected, prompt
        body = {"prompt": prompt, "max_tokens": N, "temperature": 0}
        reply = post(llama, "/v1/completions", body)["choices"][0]["text"]
        assert reply == tokenizer.decode(expected, skip_special_tokens=True), prompt


def test_llama_cpp_renders_a_chat_as_hugging_face(pair: Pair) -> None:
    model, tokenizer, llama = pair.model, pair.tokenizer, pair.llama
    expected_ids = chat_ids(tokenizer, CHAT)
    rendered = post(llama, "/apply-template", {"messages": CHAT})["prompt"]
    # llama.cpp drops the template's leading <s> and adds it when tokenizing,
    # so the text differs by that token and the tokens are the same.
    hf_text = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert "<s>" + rendered == hf_text
    assert post(llama, "/tokenize", {"content": rendered, "add_special": True})["tokens"] == (
        expected_ids
    )
    body = {"messages": CHAT, "max_tokens": N, "temperature": 0}
    reply = post(llama, "/v1/chat/completions", body)["choices"][0]["message"]["content"]
    assert reply == chat_text(hf_greedy(model, expected_ids))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "mistral"}, "not llama"),
        ({"attention_bias": True}, "biases"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope type 'yarn'"),
    ],
)
def test_what_it_cannot_convert_is_refused(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    folder = write_tiny_base(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | change))
    with pytest.raises(ValueError, match=message):
        hf_to_gguf.convert(folder, tmp_path / "m.gguf")
    assert not list(tmp_path.glob("*.gguf"))
