"""The quantize job's child: real GGUF files written by the gguf package, loaded under llama.cpp."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import gguf
import pytest

from moc.learning.worker.protocol import EXIT_DONE, EXIT_FAILED, EXIT_YIELDED
from tests.learning.worker.support import job_for, run_worker


def _types(path: Path) -> dict[str, str]:
    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}


@pytest.mark.parametrize("model", ["a", "b", "c"])
def test_q8_0_agrees_with_its_source_on_the_tiny_models(
    tmp_path: Path, tiny_models: dict[str, Path], model: str
) -> None:
    source = tiny_models[model]
    job = job_for("quantize", tmp_path, {"type": "q8_0"}, model=str(source))
    done = run_worker("quantize", job, tmp_path / "job")
    assert done.code == EXIT_DONE, done.log
    output = done.last["output"]
    print(
        f"q8_0 {model}: agreement {output['agreement']}, {output['bytes']}/{output['source_bytes']}"
    )
    assert output["agreement"] >= 0.95
    assert output["type"] == "q8_0"
    assert output["prompts"] == 8
    path = Path(output["path"])
    assert path == tmp_path / "output" / "model.gguf"
    assert output["bytes"] == path.stat().st_size
    assert output["source_bytes"] == source.stat().st_size
    assert output["bytes"] < output["source_bytes"] * 0.35  # 8.5 bits against 32
    types = _types(path)
    assert types["blk.0.attn_q.weight"] == "Q8_0"
    assert types["output.weight"] == "Q8_0"
    assert types["blk.0.attn_norm.weight"] == "F32"
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    source_reader = gguf.GGUFReader(source)
    assert reader.fields["tokenizer.ggml.tokens"].contents() == (
        source_reader.fields["tokenizer.ggml.tokens"].contents()
    )
    assert reader.fields["general.name"].contents() == model
    # one progress line per tensor, in order, after started
    progress = done.of("progress")
    total = len(types)
    assert done.events[0] == {"event": "started", "step": 0, "total": total, "resumed": False}
    assert [p["step"] for p in progress] == list(range(1, total + 1))
    assert all(p["total"] == total and p["loss"] is None for p in progress)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging left


def test_q4_0_keeps_the_output_head_at_q8_0(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    job = job_for("quantize", tmp_path, {"type": "Q4_0"}, model=str(tiny_models["b"]))
    done = run_worker("quantize", job, tmp_path / "job")
    assert done.code == EXIT_DONE, done.log
    output = done.last["output"]
    print(f"q4_0 b: agreement {output['agreement']}, {output['bytes']}/{output['source_bytes']}")
    assert output["agreement"] >= 0.8  # measured: 0.83 on b (Q4_0 is lossy; Q8_0 agrees ≥ 0.95)
    types = _types(Path(output["path"]))
    assert types["output.weight"] == "Q8_0"
    assert types["token_embd.weight"] == "Q4_0"
    assert types["blk.1.ffn_down.weight"] == "Q4_0"
    assert types["output_norm.weight"] == "F32"


def test_a_yield_discards_the_partial_output_and_exits_75(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    job = job_for("quantize", tmp_path, {"type": "q8_0"}, model=str(tiny_models["a"]))
    done = run_worker("quantize", job, tmp_path / "job", signal_at_progress=("SIGUSR1", 3))
    assert done.code == EXIT_YIELDED, done.log
    assert done.last == {"event": "yielded", "step": 0}
    assert len(done.of("progress")) == 3  # stopped at the next tensor boundary
    assert sorted(os.listdir(tmp_path)) == ["job"]  # neither output nor staging


def test_a_cancel_ends_it_and_leaves_nothing(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    job = job_for("quantize", tmp_path, {"type": "q4_0"}, model=str(tiny_models["a"]))
    done = run_worker("quantize", job, tmp_path / "job", signal_at_progress=("SIGTERM", 2))
    assert done.code == 143, done.log
    assert not done.of("done")
    assert sorted(os.listdir(tmp_path)) == ["job"]


def test_an_already_quantized_model_is_refused(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    first = job_for("quantize", tmp_path / "one", {"type": "q8_0"}, model=str(tiny_models["a"]))
    assert run_worker("quantize", first, tmp_path / "one" / "job").code == EXIT_DONE
    again = job_for(
        "quantize",
        tmp_path / "two",
        {"type": "q4_0"},
        model=str(tmp_path / "one" / "output" / "model.gguf"),
    )
    done = run_worker("quantize", again, tmp_path / "two" / "job")
    assert done.code == EXIT_FAILED
    assert "is Q8_0" in done.last["reason"]
    assert "already quantized" in done.last["reason"]
    assert not (tmp_path / "two" / "output").exists()


def test_k_quants_without_llama_quantize_are_refused(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    if shutil.which("llama-quantize"):
        pytest.skip("llama-quantize is on PATH here")
    job = job_for("quantize", tmp_path, {"type": "q4_k_m"}, model=str(tiny_models["a"]))
    done = run_worker("quantize", job, tmp_path / "job")
    assert done.code == EXIT_FAILED
    reason = done.last["reason"]
    assert reason.startswith("params.type:")
    assert "llama-quantize" in reason
    assert "q4_k_m" in reason


@pytest.mark.parametrize(
    ("params", "model", "field"),
    [
        ({"type": "q3"}, "a", "params.type"),
        ({}, "a", "params.type"),
        ({"type": "q8_0"}, None, "model"),
        ({"type": "q8_0"}, "missing", "model"),
    ],
)
def test_bad_input_fails_naming_the_field(
    tmp_path: Path,
    tiny_models: dict[str, Path],
    params: dict[str, str],
    model: str | None,
    field: str,
) -> None:
    path = None if model is None else str(tiny_models.get(model, tmp_path / "missing.gguf"))
    done = run_worker("quantize", job_for("quantize", tmp_path, params, model=path), tmp_path / "j")
    assert done.code == EXIT_FAILED
    assert done.events == [done.last]
    assert done.last["reason"].startswith(f"{field}:")
