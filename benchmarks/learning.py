"""Learning jobs under the ledger, measured against a real ``moc serve``.

    python -m benchmarks.learning [--yields 20] [--steps 400] [--out FILE]

1. **Throughput**: the same sft job (tiny-base, the demo dataset) run by the
   worker directly and through moc, no yields, alternated five times: steps
   per second over the steps after the first ten (torch's start-up is not
   training), the median of each.
2. **Time to yield**: a long sft job holds the memory a model needs; a chat
   request for that model makes it yield; the model is unloaded, the job
   resumes; again, ``--yields`` times. Per yield, as moc times it (its log's
   ``learning job yielded``, ``took_ms``): the yield request → the child gone
   and the lease released. Beside it, the
   job's step time and checkpoint-write time (the target is one of each).
3. **A request that needs a job's memory**: its latency against the same
   request on an idle machine (the model loads either way), and against what
   users do today without moc: wait for the whole job.
4. **Quantize** the demo model to q8_0 and q4_0 (size, agreement), and
   **index** the demo documents with the real MiniLM (documents/s), then
   recall@1 and @5 of the retrieval set's questions through the query API.

Prints a JSON summary (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.lease_ops import free_port, wait_port
from moc.learning.demo import DEMO_FILES, QA_ROWS
from moc.learning.retrieval_set import PASSAGES
from moc.learning.tiny_hf import write_tiny_base
from moc.learning.worker.protocol import JobFile, parse
from moc.models.tiny import TinySpec, write_tiny_gguf

ROUNDS = 5  # throughput runs of each, alternated
PARAMS: dict[str, Any] = {
    "rank": 16,
    "alpha": 32,
    "learning_rate": 5e-3,
    "target_modules": "all-linear",
    "batch_size": 4,
    "seq_len": 64,
    "seed": 0,
}


def start_moc(tmp: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """moc on a 1 GiB host device with one tiny model that asks for 600 MiB:
    it cannot load beside a learning job (about 460 MiB)."""
    http_port = free_port()
    model = write_tiny_gguf(tmp / "tiny-chat.gguf", TinySpec("tiny-chat", ffn=128, seed=1))
    config = tmp / "moc.yaml"
    config.write_text(
        "devices: {nvml: 'off', host: [{id: bench-learning, size: 1GiB}]}\n"
        "log: {level: info, format: json}\n"
        "learning: {yield_timeout_s: 30, max_parallel_jobs: 1}\n"
        f"models: [{{name: tiny-chat, path: '{model}', memory: 600MiB}}]\n"
    )
    log = tmp / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moc", "serve", "--config", str(config), "--data-dir",
         str(tmp / "data"), "--http-port", str(http_port), "--grpc-port", "0"],
        stdin=subprocess.DEVNULL, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_port(http_port, proc)
    url = f"http://127.0.0.1:{http_port}"
    for name, data in DEMO_FILES.items():
        httpx.post(f"{url}/v1/datasets", params={"name": name}, content=data).raise_for_status()
    return proc, url, log


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    data: dict[str, Any] = http.get(f"/v1/learning/jobs/{job_id}").json()
    return data


def until(check: Any, timeout: float = 300.0, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(every)


def submit(http: httpx.Client, **body: Any) -> str:
    answer = http.post("/v1/learning/jobs", json=body)
    answer.raise_for_status()
    return str(answer.json()["id"])


def finished(http: httpx.Client, job_id: str, timeout: float = 900) -> dict[str, Any]:
    until(lambda: job(http, job_id)["status"] in ("complete", "failed", "cancelled"), timeout, 0.2)
    return job(http, job_id)


# --- 1. throughput -----------------------------------------------------------------
def pace(times: list[float], skip: int = 10) -> float:
    """Steps per second over the steps after the first ``skip``."""
    return (len(times) - 1 - skip) / (times[-1] - times[skip])


def direct_run(tmp: Path, steps: int, n: int) -> tuple[float, float]:
    """The worker run by hand: (steps/s, seconds per checkpoint write)."""
    base = write_tiny_base(tmp / "tiny-base")
    dataset = tmp / "qa.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in QA_ROWS))
    job_dir = tmp / f"direct-{n}"
    job_dir.mkdir()
    JobFile(
        id=f"direct-{n}", kind="sft", params={**PARAMS, "max_steps": steps, "checkpoint_every": 50},
        output_dir=str(job_dir / "output"), checkpoint_dir=str(job_dir / "checkpoints"),
        base=str(base), dataset=str(dataset), dataset_format="instruction",
    ).write(job_dir)  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moc.learning.worker", str(job_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    steps_at: list[float] = []
    writes: list[float] = []
    for line in proc.stdout:
        item = parse(line)
        if item is None:
            continue
        now = time.monotonic()
        if item["event"] == "progress":
            steps_at.append(now)
        elif item["event"] == "checkpoint" and steps_at:
            writes.append(now - steps_at[-1])
    assert proc.wait() == 0
    return pace(steps_at), statistics.median(writes)


def through_moc(http: httpx.Client, steps: int) -> float:
    """Steps per second of the same job under moc, read off its progress four
    times a second (as a dashboard would; following every step over the
    event stream would put the follower's work on the same two cores)."""
    job_id = submit(http, kind="sft", dataset="demo-qa",
                    params={**PARAMS, "max_steps": steps, "checkpoint_every": 50})  # fmt: skip
    seen: list[tuple[float, int]] = []
    while (now := job(http, job_id))["status"] not in ("complete", "failed", "cancelled"):
        step = now["progress"]["step"]
        if 10 <= step < steps:
            seen.append((time.monotonic(), step))
        time.sleep(0.25)
    assert now["status"] == "complete", now["error"]
    (t0, s0), (t1, s1) = seen[0], seen[-1]
    return (s1 - s0) / (t1 - t0)


# --- 2. and 3. yields --------------------------------------------------------------
def log_times(log: Path, job_id: str) -> list[float]:
    """Seconds from each yield request to the job's memory being free, as moc
    timed and logged them (``learning job yielded``, ``took_ms``)."""
    took: list[float] = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "learning job yielded" and entry.get("job") == job_id:
            took.append(float(entry["took_ms"]) / 1000)
    return took


def chat(http: httpx.Client) -> float:
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    t0 = time.monotonic()
    answer = http.post("/v1/chat/completions", json=body, timeout=300)
    answer.raise_for_status()
    return time.monotonic() - t0


def yields(http: httpx.Client, log: Path, rounds: int) -> dict[str, Any]:
    idle = []
    for _ in range(3):  # the request on an idle machine: it loads the model, then answers
        http.post("/v1/models/tiny-chat/unload").raise_for_status()
        idle.append(chat(http))
    http.post("/v1/models/tiny-chat/unload").raise_for_status()
    forever = {**PARAMS, "max_steps": 10_000_000, "checkpoint_every": 10_000}
    job_id = submit(http, kind="sft", dataset="demo-qa", params=forever)
    busy = []
    step_s = []
    for _ in range(rounds):
        until(lambda: job(http, job_id)["status"] == "running", every=0.05)
        first = job(http, job_id)["progress"]["step"]
        until(lambda first=first: job(http, job_id)["progress"]["step"] >= first + 5, every=0.05)
        rate = job(http, job_id)["progress"]["tokens_per_s"]
        if rate:
            step_s.append(PARAMS["batch_size"] * PARAMS["seq_len"] / rate)
        busy.append(chat(http))
        http.post("/v1/models/tiny-chat/unload").raise_for_status()
    total_steps = job(http, job_id)["progress"]["step"]
    http.delete(f"/v1/learning/jobs/{job_id}")
    times = log_times(log, job_id)
    return {
        "yields": len(times),
        "time_to_yield_p50_ms": round(statistics.median(times) * 1000, 1),
        "time_to_yield_p95_ms": round(statistics.quantiles(times, n=20)[18] * 1000, 1),
        "step_ms_median": round(statistics.median(step_s) * 1000, 1) if step_s else None,
        "request_idle_p50_ms": round(statistics.median(idle) * 1000, 1),
        "request_needing_job_memory_p50_ms": round(statistics.median(busy) * 1000, 1),
        "request_needing_job_memory_p95_ms": round(statistics.quantiles(busy, n=20)[18] * 1000, 1),
        "steps_done": total_steps,
    }


# --- 4. quantize and index ---------------------------------------------------------
def quantize_and_index(http: httpx.Client) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("q8_0", "q4_0"):
        done = finished(http, submit(http, kind="quantize", model="tiny-chat",
                                     params={"type": kind}))  # fmt: skip
        o = done["output"]
        out[kind] = {"bytes": o["bytes"], "source_bytes": o["source_bytes"],
                     "agreement": o["agreement"]}  # fmt: skip
    done = finished(http, submit(http, kind="index", dataset="demo-docs",
                                 params={"name": "bench", "chunk_size": 2000}))  # fmt: skip
    o = done["output"]
    hits1 = hits5 = 0
    t0 = time.monotonic()
    for pid, _, question in PASSAGES:
        results = http.post("/v1/indexes/bench/query", json={"query": question, "k": 5}).json()
        found = [r["doc_id"] for r in results["results"]]
        hits1 += found[:1] == [pid]
        hits5 += pid in found
    query_s = (time.monotonic() - t0) / len(PASSAGES)
    out["index"] = {
        "documents": o["documents"], "chunks": o["chunks"], "docs_per_s": o["docs_per_s"],
        "questions": len(PASSAGES), "recall_at_1": hits1 / len(PASSAGES),
        "recall_at_5": hits5 / len(PASSAGES), "query_ms": round(query_s * 1000, 1),
    }  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--yields", type=int, default=20)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moc-bench-learning-") as name:
        tmp = Path(name)
        proc, url, log = start_moc(tmp)
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                # alternated, the best of each: the machine's noise hits both alike
                direct: list[float] = []
                writes: list[float] = []
                under_moc: list[float] = []
                for n in range(ROUNDS):
                    pace_now, write_s = direct_run(tmp, args.steps, n)
                    direct.append(pace_now)
                    writes.append(write_s)
                    under_moc.append(through_moc(http, args.steps))
                direct_pace = statistics.median(direct)
                moc_pace = statistics.median(under_moc)
                checkpoint_s = statistics.median(writes)
                result: dict[str, Any] = {
                    "throughput": {
                        "direct_steps_per_s_median": round(direct_pace, 2),
                        "moc_steps_per_s_median": round(moc_pace, 2),
                        "ratio_of_medians": round(moc_pace / direct_pace, 3),
                        "direct_runs": [round(x, 1) for x in direct],
                        "moc_runs": [round(x, 1) for x in under_moc],
                    },
                    "checkpoint_write_ms": round(checkpoint_s * 1000, 1),
                }
                result["yield"] = yields(http, log, args.yields)
                result["yield"]["whole_job_s_at_this_pace"] = round(args.steps / moc_pace, 1)
                result |= quantize_and_index(http)
        finally:
            proc.terminate()
            proc.wait(30)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
