"""Learning jobs end to end, against a real ``moc serve``: a LoRA trained on the
tiny base while inference needs its memory (it yields once and resumes), the
trained answer checked with the adapter applied; a ``kill -9`` of moc mid-run;
and the bad input a user can send."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.support import Factory, chat, spec, start, wait_for
from tests.learning.worker.test_sft_learns import ANSWER, PROMPT, ROWS
from tests.learning.worker.test_sft_learns import LEARNS as WORKER_LEARNS

pytestmark = [pytest.mark.usefixtures("no_stray_runtimes"), pytest.mark.slow]

# What makes the tiny base learn one answer reliably, as the worker's own test
# found; checkpoints as the runs here choose.
LEARNS: dict[str, Any] = {k: v for k, v in WORKER_LEARNS.items() if k != "checkpoint_every"}
LEARNING = {"yield_timeout_s": 20, "max_parallel_jobs": 1}


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def add_dataset(http: httpx.Client, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    answer = http.post("/v1/datasets", params={"name": name}, content=jsonl(rows))
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()
    return data


def submit(http: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = http.post("/v1/learning/jobs", json=body)
    assert answer.status_code == 202, answer.text
    data: dict[str, Any] = answer.json()
    return data


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    data: dict[str, Any] = http.get(f"/v1/learning/jobs/{job_id}").json()
    return data


def finished(http: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    wait_for(lambda: job(http, job_id)["status"] in ("complete", "failed", "cancelled"), timeout)
    return job(http, job_id)


def greedy(folder: Path, adapter: str | None, prompt: str) -> str:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model: Any = AutoModelForCausalLM.from_pretrained(folder)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=40, do_sample=False)
    return str(tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_lora_trains_yields_to_inference_resumes_and_answers_as_trained(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    # The model needs most of the device: it cannot load beside the job.
    moc = start(
        moc_factory,
        [spec(tiny_models, "a", memory="600MiB")],
        size="1GiB",
        learning=LEARNING,
    )
    with httpx.Client(base_url=moc.url, timeout=60) as http:
        add_dataset(http, "qa", ROWS)
        submitted = submit(http, kind="sft", dataset="qa", params={**LEARNS, "max_steps": 120})
        assert submitted["base"] == "tiny-base"
        assert submitted["bytes_source"] == "estimate"
        job_id = submitted["id"]
        wait_for(lambda: job(http, job_id)["progress"]["step"] >= 5, timeout=90)
        running = job(http, job_id)
        assert running["status"] == "running"
        assert running["held_on"] == "host"
        leases = http.get("/v1/leases").json()["leases"]
        assert [lease["holder"] for lease in leases] == [f"learning:{job_id}"]
        assert leases[0]["yield_s"] is not None

        t0 = time.monotonic()
        answer = http.post("/v1/chat/completions", json=chat("a"))
        waited = time.monotonic() - t0
        assert answer.status_code == 200, answer.text
        assert waited < LEARNING["yield_timeout_s"]  # one step and a checkpoint, not the run
        yielded = job(http, job_id)
        assert yielded["yields"] == 1
        assert yielded["status"] in ("yielded", "queued")  # waits for the memory
        assert yielded["held_on"] is None

        assert http.post("/v1/models/a/unload").status_code == 200
        done = finished(http, job_id)
        assert done["status"] == "complete", done["error"]
        assert (done["yields"], done["resumes"]) == (1, 1)
        assert done["output"]["steps"] == 120
        # registered, signed by moc's own key, as the next version of its name
        assert done["output"]["artifact"].startswith(f"tiny-base-{job_id}@sha256:")
        assert (moc.data_dir / "keys" / "default.key").stat().st_mode & 0o077 == 0
        assert done["peak_used_bytes"] is not None
        metrics = http.get("/metrics").text
        assert 'moc_learning_yields_total{kind="sft"} 1.0' in metrics
        assert "moc_learning_yield_seconds_count 1.0" in metrics

    base = moc.data_dir / "learning" / "bases" / "tiny-base"
    adapter = done["output"]["adapter_dir"]
    assert ANSWER not in greedy(base, None, PROMPT)
    assert greedy(base, adapter, PROMPT) == ANSWER


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_job_cut_off_by_kill_9_resumes_from_its_checkpoint_after_the_restart(
    moc_factory: Factory,
) -> None:
    # a lease TTL much shorter than the run: the job's lease is renewed while it runs
    moc = start(moc_factory, [], size="1GiB", learning=LEARNING, leases={"default_ttl_s": 2})
    params = {**LEARNS, "max_steps": 400, "checkpoint_every": 20}
    with httpx.Client(base_url=moc.url, timeout=60) as http:
        add_dataset(http, "qa", ROWS)
        job_id = submit(http, kind="sft", dataset="qa", params=params)["id"]
        wait_for(lambda: job(http, job_id)["progress"]["step"] >= 30, timeout=90)
        assert moc.proc is not None
        children = psutil.Process(moc.proc.pid).children()
        child = next(p for p in children if "moc.learning.worker" in " ".join(p.cmdline()))
    moc.kill9()
    child.wait(10)  # it dies with moc: nothing holds memory nobody accounts for
    moc.start()
    with httpx.Client(base_url=moc.url, timeout=60) as http:
        done = finished(http, job_id, timeout=180)
        assert done["status"] == "complete", done["error"]
        assert done["resumes"] >= 1
        assert done["output"]["steps"] == 400
    losses = (moc.data_dir / "learning" / "jobs" / job_id / "losses.jsonl").read_text().splitlines()
    assert len(losses) == 400  # each step once: resumed at its checkpoint, not from scratch


def test_bad_learning_jobs_are_refused_naming_the_field(moc_factory: Factory) -> None:
    moc = start(moc_factory, [], size="1GiB", learning=LEARNING)
    with httpx.Client(base_url=moc.url, timeout=30) as http:
        add_dataset(http, "qa", ROWS)
        add_dataset(http, "docs", [{"text": "a document"}])

        def refused(status: int, field: str, **body: Any) -> dict[str, Any]:
            answer = http.post("/v1/learning/jobs", json=body)
            assert answer.status_code == status, answer.text
            error: dict[str, Any] = answer.json()["error"]
            assert error["param"] == field, error
            return error

        # a name moc does not know: 404, naming the field
        assert refused(404, "dataset", kind="sft", dataset="nope")["code"] == "dataset_not_found"
        assert refused(404, "base", kind="sft", dataset="qa", base="/nowhere")["code"] == (
            "model_not_found"
        )
        refused(404, "model", kind="quantize", model="nope", params={"type": "q8_0"})
        refused(404, "goal", kind="index", dataset="docs", params={"name": "i"}, goal="none")
        # out of range or unknown: 400, with the limit and the value
        rank = refused(400, "params.rank", kind="sft", dataset="qa", params={"rank": 100000})
        assert (rank["details"]["limit"], rank["details"]["value"]) == (256, 100000)
        refused(400, "params.lr", kind="sft", dataset="qa", params={"lr": 1})
        refused(400, "params.type", kind="quantize", model="x", params={"type": "q2"})
        refused(400, "params.name", kind="index", dataset="docs", params={})
        # well-formed values that do not go together: 422
        wrong = refused(422, "dataset", kind="sft", dataset="docs")
        assert wrong["code"] == "learning_job_invalid"
        assert "instruction" in wrong["message"]
        refused(422, "dataset", kind="sft")
        refused(422, "model", kind="quantize", params={"type": "q8_0"})
        overlap = {"name": "i", "chunk_size": 100, "chunk_overlap": 100}
        refused(422, "params", kind="index", dataset="docs", params=overlap)
        refused(400, "kind", kind="rlhf")
        assert http.get("/v1/learning/jobs/lj_nope").json()["error"]["code"] == (
            "learning_job_not_found"
        )
        assert http.get("/v1/learning/jobs", params={"limit": 0}).status_code == 400


def test_a_crashing_trainer_fails_its_job_with_the_end_of_its_log(
    moc_factory: Factory, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-base"
    broken.mkdir()
    (broken / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 128,
                "vocab_size": 259,
            }
        )
    )
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    moc = start(moc_factory, [], size="1GiB", learning=LEARNING)
    with httpx.Client(base_url=moc.url, timeout=30) as http:
        add_dataset(http, "qa", ROWS)
        job_id = submit(http, kind="sft", dataset="qa", base=str(broken), params=LEARNS)["id"]
        done = finished(http, job_id, timeout=90)
        assert done["status"] == "failed"
        assert "last lines of" in done["error"]
        assert http.get("/v1/leases").json()["leases"] == []  # its memory is back
        # a dataset in use by an unfinished job cannot go; this one's job is done
        assert http.delete("/v1/datasets/qa").status_code == 200


def test_cancel_while_queued_and_while_running_gives_the_memory_back(
    moc_factory: Factory,
) -> None:
    # room for one job (the estimate is about 460 MiB), not two
    moc = start(moc_factory, [], size="700MiB", learning={**LEARNING, "max_parallel_jobs": 2})
    with httpx.Client(base_url=moc.url, timeout=30) as http:
        add_dataset(http, "qa", ROWS)
        params = {**LEARNS, "max_steps": 100000}
        first = submit(http, kind="sft", dataset="qa", params=params)["id"]
        wait_for(lambda: job(http, first)["status"] == "running", timeout=60)
        # the device holds one: the second waits for memory
        second = submit(http, kind="sft", dataset="qa", params=params)["id"]
        wait_for(lambda: job(http, second)["status"] == "queued")
        in_use = http.delete("/v1/datasets/qa")
        assert in_use.status_code == 409
        assert set(in_use.json()["error"]["details"]["jobs"]) == {first, second}
        assert http.delete(f"/v1/learning/jobs/{second}").status_code == 200
        assert finished(http, second)["status"] == "cancelled"
        wait_for(lambda: job(http, first)["progress"]["step"] >= 2, timeout=60)
        assert http.post(f"/v1/learning/jobs/{first}/cancel").status_code == 200
        assert finished(http, first)["status"] == "cancelled"
        assert http.get("/v1/leases").json()["leases"] == []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        assert "moc.learning.worker" not in " ".join(proc.cmdline())


def test_a_yieldable_lease_is_asked_to_let_go_by_a_load_and_sees_it_in_its_renew(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, [spec(tiny_models, "a", memory="600MiB")], size="1GiB")
    with httpx.Client(base_url=moc.url, timeout=30) as http:
        body = {"mb": 500, "priority": 20, "yield_s": 10, "ttl_s": 60, "holder": "trainer"}
        lease = http.post("/v1/leases", json=body).json()
        assert lease["yield_by"] is None
        with http.stream("GET", f"/v1/leases/{lease['id']}/events", timeout=30) as events:
            loading = threading.Thread(
                target=lambda: http.post("/v1/models/a/load", timeout=60), daemon=True
            )
            loading.start()
            lines = events.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            asked = json.loads(first[5:])
            assert asked["event"] == "yield"
            assert asked["lease_id"] == lease["id"]
            renewed = http.post(f"/v1/leases/{lease['id']}/renew").json()
            assert renewed["yield_by"] == asked["yield_by"]
            assert http.delete(f"/v1/leases/{lease['id']}").status_code == 200
            ended = json.loads(next(line for line in lines if line.startswith("data:"))[5:])
            assert ended == {"event": "ended", "state": "released", "lease_id": lease["id"]}
            loading.join(60)
        assert http.get("/v1/models/a").json()["state"] == "ready"
