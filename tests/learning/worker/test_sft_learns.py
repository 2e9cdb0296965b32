"""Training works: after a LoRA is trained on the tiny base, the base with the
adapter answers a chosen prompt with a chosen text (greedy decoding) that the
base alone does not produce. The daemon's end-to-end test uses these settings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from moc.learning.demo import QA_ROWS
from moc.learning.worker.protocol import EXIT_DONE
from tests.learning.worker.conftest import run_worker, write_job, write_jsonl

pytestmark = pytest.mark.slow

PROMPT = "What is the answer?\n"
ANSWER = "The answer is forty-two."
# What makes the tiny base learn one answer reliably in about 60 steps (the
# training itself takes 1–2 s on two CPU cores; starting torch takes longer).
LEARNS = {
    "rank": 16,
    "alpha": 32,
    "learning_rate": 5e-3,
    "target_modules": "all-linear",
    "max_steps": 60,
    "batch_size": 4,
    "seq_len": 64,
    "checkpoint_every": 1000,
}
ROWS = QA_ROWS  # the demo dataset, demo-qa
assert ROWS[0] == {"prompt": PROMPT, "completion": ANSWER}


def greedy(model: torch.nn.Module, tokenizer: object, prompt: str) -> str:
    inputs = tokenizer(prompt, return_tensors="pt")  # type: ignore[operator]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=40, do_sample=False)  # type: ignore[operator]
    reply = out[0][inputs["input_ids"].shape[1] :]
    return str(tokenizer.decode(reply, skip_special_tokens=True))  # type: ignore[attr-defined]


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("seed", [0, 1])
def test_a_trained_adapter_gives_the_chosen_answer_the_base_does_not(
    tmp_path: Path, tiny_base: Path, seed: int
) -> None:
    dataset = write_jsonl(tmp_path / "qa.jsonl", ROWS)
    job_dir = tmp_path / "job"
    write_job(job_dir, tiny_base, dataset, {**LEARNS, "seed": seed}, dataset_format="instruction")
    started = time.monotonic()
    result = run_worker(job_dir)
    wall = time.monotonic() - started
    assert result.returncode == EXIT_DONE, (job_dir / "worker.log").read_text()[-2000:]
    output = result.last("done")["output"]
    assert output["steps"] == 60
    assert output["final_loss"] < 0.5 < output["losses"][0]
    assert wall < 60

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    before = greedy(base, tokenizer, PROMPT)
    assert ANSWER not in before
    tuned = PeftModel.from_pretrained(base, output["adapter_dir"])
    assert greedy(tuned, tokenizer, PROMPT) == ANSWER
    assert greedy(tuned, tokenizer, "Say hello.\n") == "Hello there!"
