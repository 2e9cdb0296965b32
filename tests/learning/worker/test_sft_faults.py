"""The sft job's failures it understands: a ``failed`` event with the reason,
exit 1, and nothing half-written at ``output_dir``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from moc.learning.worker.protocol import EXIT_FAILED, JobFile
from tests.learning.worker.conftest import chat_rows, run_worker, write_job, write_jsonl

pytestmark = pytest.mark.slow

SMALL = {"max_steps": 6, "batch_size": 2, "seq_len": 64, "threads": 1}
# Writes past 16 KiB fail with EFBIG (Python ignores SIGXFSZ), as a full disk
# fails them with ENOSPC: the adapter's tensors (32 KiB) cannot be written.
FILE_LIMIT = "import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))"


def test_a_bad_dataset_line_fails_the_job_naming_the_line(tmp_path: Path, tiny_base: Path) -> None:
    dataset = tmp_path / "chat.jsonl"
    write_jsonl(dataset, chat_rows(3))
    with dataset.open("a") as f:
        f.write('{"messages": [{"role": "user", "content": 7}]}\n')
    write_job(tmp_path / "job", tiny_base, dataset, SMALL)
    result = run_worker(tmp_path / "job")
    assert result.returncode == EXIT_FAILED
    reason = result.last("failed")["reason"]
    assert "line 4" in reason
    assert "'content' must be a string" in reason
    assert not (tmp_path / "job" / "adapter").exists()


def test_a_dataset_of_the_other_format_fails_the_job(tmp_path: Path, tiny_base: Path) -> None:
    dataset = write_jsonl(tmp_path / "chat.jsonl", chat_rows(3))
    write_job(tmp_path / "job", tiny_base, dataset, SMALL, dataset_format="instruction")
    result = run_worker(tmp_path / "job")
    assert result.returncode == EXIT_FAILED
    assert "line 1: 'prompt' must be a string" in result.last("failed")["reason"]


def test_an_unknown_param_fails_the_job_naming_it(tmp_path: Path, tiny_base: Path) -> None:
    dataset = write_jsonl(tmp_path / "chat.jsonl", chat_rows(3))
    write_job(tmp_path / "job", tiny_base, dataset, {**SMALL, "learning_rat": 0.1})
    result = run_worker(tmp_path / "job")
    assert result.returncode == EXIT_FAILED
    assert "params: unknown learning_rat" in result.last("failed")["reason"]


def test_a_missing_base_fails_the_job(tmp_path: Path) -> None:
    dataset = write_jsonl(tmp_path / "chat.jsonl", chat_rows(3))
    write_job(tmp_path / "job", tmp_path / "nowhere", dataset, SMALL)
    result = run_worker(tmp_path / "job")
    assert result.returncode == EXIT_FAILED
    assert "is not a Hugging Face model folder" in result.last("failed")["reason"]


def test_an_unknown_kind_fails_at_once(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    JobFile(id="j", kind="distil", params={}, output_dir="o", checkpoint_dir="c").write(job_dir)
    result = run_worker(job_dir)
    assert result.returncode == EXIT_FAILED
    assert result.events == [
        {"event": "failed", "reason": "kind 'distil' is not one of sft, quantize, index"}
    ]


def test_a_full_disk_while_checkpointing_fails_cleanly(tmp_path: Path, tiny_base: Path) -> None:
    dataset = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    job_dir = tmp_path / "job"
    write_job(job_dir, tiny_base, dataset, {**SMALL, "checkpoint_every": 2})
    result = run_worker(job_dir, prelude=FILE_LIMIT)
    assert result.returncode == EXIT_FAILED
    reason = result.last("failed")["reason"]
    assert reason.startswith("checkpoint at step 2 not written: ")
    assert "File too large" in reason
    assert not any(e["event"] == "checkpoint" for e in result.events)
    assert list((job_dir / "checkpoints").iterdir()) == []  # the temporary folder went too
    assert not (job_dir / "adapter").exists()


def test_a_full_disk_while_writing_the_adapter_leaves_no_output(
    tmp_path: Path, tiny_base: Path
) -> None:
    dataset = write_jsonl(tmp_path / "chat.jsonl", chat_rows(4))
    job_dir = tmp_path / "job"
    write_job(job_dir, tiny_base, dataset, {**SMALL, "checkpoint_every": 1000})
    result = run_worker(job_dir, prelude=FILE_LIMIT)
    assert result.returncode == EXIT_FAILED
    assert result.last("progress")["step"] == SMALL["max_steps"]
    assert "adapter not written to" in result.last("failed")["reason"]
    assert sorted(p.name for p in job_dir.iterdir()) == [
        "job.json",
        "losses.jsonl",
        "worker.log",
    ]
    assert len((job_dir / "losses.jsonl").read_text().splitlines()) == SMALL["max_steps"]
    assert json.loads((job_dir / "job.json").read_text())["kind"] == "sft"


def test_a_kind_whose_module_is_absent_fails_naming_it(tmp_path: Path) -> None:
    from moc.learning.worker.__main__ import KINDS

    missing = [kind for kind, module in KINDS.items() if importlib.util.find_spec(module) is None]
    if not missing:
        pytest.skip("every kind's module is present")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    JobFile(id="j", kind=missing[0], params={}, output_dir="o", checkpoint_dir="c").write(job_dir)
    result = run_worker(job_dir)
    assert result.returncode == EXIT_FAILED
    assert result.last("failed")["reason"] == (
        f"{missing[0]} jobs are not part of this moc ({KINDS[missing[0]]})"
    )
