"""The tiny base in HF format: written with numpy alone, loaded by transformers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from moc.learning import tiny_hf
from moc.learning.tiny_hf import FILES, write_tiny_base


def digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_weights(
    tmp_path: Path,
) -> None:
    a = digests(write_tiny_base(tmp_path / "a", seed=3))
    b = digests(write_tiny_base(tmp_path / "b", seed=3))
    c = digests(write_tiny_base(tmp_path / "c", seed=4))
    assert a == b
    assert a["model.safetensors"] != c["model.safetensors"]
    assert a["tokenizer.json"] == c["tokenizer.json"]


def test_a_complete_folder_is_left_alone_and_an_incomplete_one_is_replaced(
    tmp_path: Path,
) -> None:
    folder = write_tiny_base(tmp_path / "m")
    mtimes = {name: (folder / name).stat().st_mtime_ns for name in FILES}
    write_tiny_base(folder, seed=9)
    assert {name: (folder / name).stat().st_mtime_ns for name in FILES} == mtimes
    (folder / "model.safetensors").unlink()
    (folder / "stray.txt").write_text("left from before")
    write_tiny_base(folder)
    assert tiny_hf.is_complete(folder)
    assert not (folder / "stray.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary folder left


def test_the_hand_written_safetensors_reads_back_as_the_numpy_weights(tmp_path: Path) -> None:
    folder = write_tiny_base(tmp_path / "m", seed=1)
    tensors = load_file(str(folder / "model.safetensors"))
    expected = tiny_hf.weights(1)
    assert tensors.keys() == expected.keys()
    for name, array in expected.items():
        assert tensors[name].dtype == torch.float32
        assert torch.equal(tensors[name], torch.from_numpy(array)), name


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_base(tmp_path_factory.mktemp("hf") / "tiny-base")


@pytest.mark.parametrize(
    "text", ["hello world", "  two  spaces\n\ttab\r\n", "héllo 世界 🎉 \u2581", "<|user|>", ""]
)
def test_text_round_trips_through_the_tokenizer_one_token_per_byte(base: Path, text: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base)
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert ids[1:] == [tiny_hf.BYTE_OFFSET + b for b in text.encode()]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_the_tokenizer_knows_its_special_tokens_and_renders_chats(base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base)
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == "<s><|user|>\nhi</s>\n<|assistant|>\nyo</s>\n"
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<s><|user|>\nhi</s>\n<|assistant|>\n"


def test_transformers_loads_the_model_and_it_generates(base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.hidden_size == tiny_hf.HIDDEN
    assert model.config.num_hidden_layers == tiny_hf.LAYERS
    assert sum(p.numel() for p in model.parameters()) == sum(
        a.size for a in tiny_hf.weights(0).values()
    )
    inputs = tokenizer("What is the answer?", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
        again = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 12)
    assert torch.equal(out, again)
    assert isinstance(tokenizer.decode(out[0]), str)
