"""The inference gateway end to end: a real ``moc serve`` in front of real
llama.cpp servers (tiny GGUF models), driven by the official ``openai`` and
``ollama`` clients and by raw HTTP where a client would hide what is tested."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

import moc
from tests.conftest import free_port
from tests.integration.support import Factory, chat, load, metric, model, spec, start, wait_for

pytestmark = pytest.mark.usefixtures("no_stray_runtimes")

# Tiny models write about a thousand tokens a second on two cores: long enough
# to hold a slot while other requests queue behind it.
LONG = {"max_tokens": 1500, "ignore_eos": True}
# Holds the one slot while several other requests queue, are refused and time
# out behind it: several seconds even on a fast machine (the model's context is 4,096).
BLOCKER = {"max_tokens": 4000, "ignore_eos": True}


def post(moc_url: str, body: dict[str, Any], **headers: Any) -> httpx.Response:
    return httpx.post(f"{moc_url}/v1/chat/completions", json=body, headers=headers, timeout=120)


def in_background(fn: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn(*args, **kwargs)), daemon=True)

    thread.start()
    return thread, result


def queued(http: httpx.Client) -> float:
    return sum(metric(http, "moc_queue_depth", priority=p) for p in ("high", "normal", "low"))


def running(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("moc_requests_in_flight "))
    return float(line.split()[1])


# --- the official clients ------------------------------------------------------------
def test_openai_client_completions_streams_models_and_embeddings(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(
        moc_factory,
        [
            spec(tiny_models, "a"),
            spec(tiny_models, "b", args=["--embeddings", "--pooling", "mean"]),
        ],
        size="1GiB",
    )
    client = openai.OpenAI(base_url=f"{moc.url}/v1", api_key="unused", max_retries=0)
    with httpx.Client(base_url=moc.url) as http:
        assert model(http, "a")["state"] == "stopped"
        raw = client.chat.completions.with_raw_response.create(
            model="a", messages=[{"role": "user", "content": "hi"}], max_tokens=8
        )
        reply = raw.parse()
        assert reply.choices[0].message.content
        assert reply.choices[0].message.content.isprintable()
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 8
        assert float(raw.headers["x-moc-queue-ms"]) > 0  # it waited for the load
        assert 0 <= float(raw.headers["x-moc-overhead-ms"]) < 1000
        assert model(http, "a")["state"] == "ready"  # loaded on demand

    text = client.completions.create(model="a", prompt="hello", max_tokens=8).choices[0].text
    assert text

    pieces = list(
        client.chat.completions.create(
            model="a", messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True
        )
    )
    streamed = "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
    assert len(streamed) >= 4
    assert [p.choices[0].finish_reason for p in pieces if p.choices][-1] == "length"

    assert [m.id for m in client.models.list()] == ["a", "b"]
    vector = client.embeddings.create(model="b", input="hello").data[0].embedding
    assert len(vector) == 64

    # The backend's own error comes back as it is (no "src": "moc") ...
    with pytest.raises(openai.APIStatusError) as backend_error:
        client.embeddings.create(model="a", input="hello")
    assert backend_error.value.status_code == 501
    assert "src" not in str(backend_error.value.body)
    # ... moc's errors say they are moc's.
    with pytest.raises(openai.NotFoundError) as ours:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert isinstance(ours.value.body, dict)
    assert (ours.value.body["code"], ours.value.body["src"]) == ("model_not_found", "moc")
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="a", messages=[])
    assert isinstance(bad.value.body, dict)
    assert (bad.value.body["param"], bad.value.body["src"]) == ("messages", "moc")
    client.close()
    # Unknown names are counted as "-"; an answer is counted just after its
    # last bytes went out, so the client may look a moment before.
    expected = {("-", "404"): 1, ("-", "400"): 1, ("a", "200"): 3, ("a", "501"): 1}
    with httpx.Client(base_url=moc.url) as http:

        def counted() -> dict[tuple[str, str], float]:
            return {
                (n, s): metric(http, "moc_requests_total", model=n, api="openai", status=s)
                for n, s in expected
            }

        deadline = time.monotonic() + 30
        while (found := counted()) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert found == expected


def test_ollama_client_generate_chat_list_ps_show(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, [spec(tiny_models, "a")], size="1GiB")
    client = ollama.Client(host=moc.url)

    whole = client.generate(model="a", prompt="hi", options={"num_predict": 8}, stream=False)
    assert (whole.done, whole.done_reason, whole.eval_count) == (True, "length", 8)
    assert whole.response
    assert whole.total_duration
    assert whole.total_duration > 0

    parts = list(client.generate(model="a", prompt="hi", options={"num_predict": 8}, stream=True))
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert "".join(p.response or "" for p in parts)
    assert parts[-1].eval_count == 8

    answer = client.chat(model="a", messages=[{"role": "user", "content": "hi"}])
    assert answer.message.role == "assistant"
    assert answer.message.content
    chunks = list(
        client.chat(
            model="a",
            messages=[{"role": "user", "content": "hi"}],
            options={"num_predict": 6},
            stream=True,
        )
    )
    assert "".join(c.message.content or "" for c in chunks)
    assert chunks[-1].done

    listed = client.list().models
    assert [m.model for m in listed] == ["a"]
    assert listed[0].size == tiny_models["a"].stat().st_size
    assert listed[0].details
    assert listed[0].details.family == "llama"
    loaded = client.ps().models
    assert [m.model for m in loaded] == ["a"]
    assert loaded[0].size
    assert loaded[0].size > 0
    assert loaded[0].context_length == 512
    assert client.show("a").modelinfo["general.architecture"] == "llama"
    assert httpx.get(f"{moc.url}/api/version").json()["version"]

    # Ollama's empty request: keep_alive 0 unloads, a plain one loads.
    assert client.generate(model="a", keep_alive=0).done_reason == "unload"
    assert client.ps().models == []
    assert client.generate(model="a").done_reason == "load"
    assert [m.model for m in client.ps().models] == ["a"]

    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404
    assert "not in the catalog" in err.value.error
    client.close()


# --- queues ----------------------------------------------------------------------
def test_priority_decides_the_order_under_saturation(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(
        moc_factory, [spec(tiny_models, "a", ctx=4096)], size="1GiB", gateway={"max_in_flight": 1}
    )
    # When each answer came. With one request at a time, the answers come in
    # the order the requests were sent on; each runs long enough (~0.5 s on a
    # busy machine) that a client thread woken late cannot reorder them.
    answered: dict[str, float] = {}
    spaced = {"max_tokens": 1000, "ignore_eos": True}

    def send(label: str, body: dict[str, Any], headers: dict[str, str]) -> int:
        answer = post(moc.url, body, **headers)
        answered[label] = time.monotonic()
        return answer.status_code

    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        blocker, _ = in_background(send, "blocker", chat("a", **BLOCKER), {})
        wait_for(lambda: running(http) == 1)
        threads = []
        for n, (label, body, headers) in enumerate(
            [
                ("low", chat("a", **spaced), {"x-moc-priority": "low"}),
                ("normal", chat("a", **spaced), {}),
                ("high", chat("a", priority="high", **spaced), {}),  # the body's field works too
            ]
        ):
            threads.append(in_background(send, label, body, headers)[0])
            wait_for(lambda n=n: queued(http) == n + 1)
        for thread in [blocker, *threads]:
            thread.join(60)
    assert sorted(answered, key=answered.__getitem__) == ["blocker", "high", "normal", "low"]


def test_full_queue_is_429_and_a_missed_deadline_is_503(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    queues = {"low": {"max_waiting": 1, "timeout_s": 60}, "normal": {"timeout_s": 0.3}}
    moc = start(
        moc_factory,
        [spec(tiny_models, "a", ctx=4096)],
        size="1GiB",
        gateway={"max_in_flight": 1, "queues": queues},
    )
    low = {"x-moc-priority": "low"}
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        blocker, _ = in_background(post, moc.url, chat("a", **BLOCKER))
        wait_for(lambda: running(http) == 1)
        waiter, _ = in_background(post, moc.url, chat("a"), **low)
        wait_for(lambda: queued(http) == 1)

        full = post(moc.url, chat("a"), **low)
        assert full.status_code == 429
        error = full.json()["error"]
        assert (error["code"], error["src"], error["details"]["limit"]) == ("queue_full", "moc", 1)
        assert int(full.headers["retry-after"]) >= 1
        assert "x-moc-queue-ms" in full.headers

        late = post(moc.url, chat("a"))  # normal priority: it may wait 0.3 s
        assert late.status_code == 503
        assert late.json()["error"]["code"] == "queue_timeout"
        assert int(late.headers["retry-after"]) >= 1
        assert float(late.headers["x-moc-queue-ms"]) >= 250
        assert running(http) == 1  # the blocker was still running all along
        blocker.join(60)
        waiter.join(60)
        for status, count in (("429", 1), ("503", 1), ("200", 2)):  # counted after the last byte
            wait_for(
                lambda s=status, c=count: (
                    metric(http, "moc_requests_total", model="a", api="openai", status=s) == c
                )
            )


def _raw_request(port: int, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def test_a_client_that_goes_away_leaves_the_queue_and_stops_its_backend(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(
        moc_factory, [spec(tiny_models, "a", ctx=4096)], size="1GiB", gateway={"max_in_flight": 1}
    )
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        blocker, _ = in_background(post, moc.url, chat("a", **LONG))
        wait_for(lambda: running(http) == 1)
        gone = _raw_request(moc.http_port, httpx.Request("POST", "/", json=chat("a")).read())
        wait_for(lambda: queued(http) == 1)
        gone.close()
        wait_for(lambda: queued(http) == 0, timeout=5)
        assert metric(http, "moc_requests_abandoned_total", model="a", stage="queued") == 1
        blocker.join(60)

        # Gone while its answer streams: the backend connection is closed and
        # llama.cpp stops, so the next request is not stuck behind it.
        long_stream = chat("a", stream=True, max_tokens=3000, ignore_eos=True)
        with httpx.stream("POST", f"{moc.url}/v1/chat/completions", json=long_stream) as r:
            next(r.iter_raw())
        wait_for(lambda: running(http) == 0, timeout=5)
        assert metric(http, "moc_requests_abandoned_total", model="a", stage="running") == 1
        t0 = time.monotonic()
        assert post(moc.url, chat("a")).status_code == 200
        assert time.monotonic() - t0 < 2.0  # 3,000 tokens would take several seconds


def test_a_low_priority_batch_gathers_before_its_swap(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    """With ``batch_s`` on the low queue, low-priority requests for a model that
    needs a swap wait that long for company, and one load serves them all; a
    normal-priority request (no batch time) swaps at once."""
    moc = start(
        moc_factory,
        [spec(tiny_models, "a", memory="30MiB"), spec(tiny_models, "b", memory="30MiB")],
        size="50MiB",  # one fits: b needs a swap
        gateway={"queues": {"low": {"batch_s": 1.5}}},
    )
    low = {"x-moc-priority": "low"}
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        sent = []
        for _ in range(3):
            sent.append(in_background(post, moc.url, chat("b"), **low))
            time.sleep(0.2)
        for thread, _ in sent:
            thread.join(60)
        answers = [reply[0] for _, reply in sent]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert float(answers[0].headers["x-moc-queue-ms"]) >= 1500  # it waited for the batch
        loads = metric(http, "moc_model_loads_total", model="b", outcome="loaded")
        assert loads == 1  # one load served all three

        t0 = time.monotonic()
        assert post(moc.url, chat("a")).status_code == 200  # normal: a swaps back at once
        assert time.monotonic() - t0 < 1.4


def test_a_loaded_model_answers_while_another_loads_slowly(
    moc_factory: Factory, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    slow_file = tmp_path / "slow.gguf"
    slow_file.write_bytes(tiny_models["b"].read_bytes())
    wrapper = tmp_path / "slow-start.sh"  # a real llama.cpp server that takes 3 s to start
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in *slow.gguf*) sleep 3;; esac\n'
        f'exec {sys.executable} -m moc.backends.xllamacpp_server "$@"\n'
    )
    wrapper.chmod(0o755)
    moc = start(
        moc_factory,
        [spec(tiny_models, "a"), {"name": "slow", "path": str(slow_file), "ctx": 512}],
        size="1GiB",
        runtimes={"llamacpp": {"server": str(wrapper)}},
    )
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        slow, slow_reply = in_background(post, moc.url, chat("slow"))
        wait_for(lambda: model(http, "slow")["state"] == "starting")
        took = []
        for _ in range(10):
            t0 = time.monotonic()
            assert post(moc.url, chat("a")).status_code == 200
            took.append(time.monotonic() - t0)
        assert model(http, "slow")["state"] == "starting"  # all ten ran during the load
        assert max(took) < 1.0, took
        slow.join(60)
        assert slow_reply[0].status_code == 200


# --- resilience ----------------------------------------------------------------------
def test_breaker_opens_after_failures_and_a_probe_closes_it(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    port = free_port()
    remote = {"name": "remote", "backend": "openai", "url": f"http://127.0.0.1:{port}/v1"}
    moc = start(
        moc_factory,
        [remote],
        gateway={"breaker_failures": 2, "breaker_open_s": 1.0},
    )
    with httpx.Client(base_url=moc.url) as http:
        for _ in range(2):
            failed = post(moc.url, chat("remote"))
            assert failed.status_code == 503
            assert failed.json()["error"]["code"] == "backend_unavailable"
        t0 = time.monotonic()
        fast = post(moc.url, chat("remote"))
        assert time.monotonic() - t0 < 0.5
        assert (fast.status_code, fast.json()["error"]["code"]) == (503, "circuit_open")
        assert int(fast.headers["retry-after"]) >= 1
        assert metric(http, "moc_breaker_state", model="remote") == 1

        # A real server appears where the remote model points; after open_s one
        # probe goes through and closes the breaker.
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "moc.backends.xllamacpp_server",
                "--model",
                str(tiny_models["a"]),
                "--port",
                str(port),
                "--ctx-size",
                "512",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _healthy(port), timeout=30)
            time.sleep(1.0)
            probe = post(moc.url, chat("remote"))
            assert probe.status_code == 200, probe.text
            assert metric(http, "moc_breaker_state", model="remote") == 0
            assert post(moc.url, chat("remote")).status_code == 200

            # A backend that answers a malformed request with 500 is up: one
            # client's bad requests do not open the breaker for everyone.
            for _ in range(3):
                bad = post(moc.url, {**chat("remote"), "tools": [None]})
                assert bad.status_code == 500, bad.text
            assert metric(http, "moc_breaker_state", model="remote") == 0
            assert post(moc.url, chat("remote")).status_code == 200
        finally:
            server.terminate()
            server.wait(10)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_backend_killed_mid_stream_and_before_answering(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    # A long answer (several seconds even on a fast machine): on a busy one the
    # test may be descheduled between the first chunk and the kill, and a short
    # answer would have been generated whole by then.
    moc = start(moc_factory, [spec(tiny_models, "a", ctx=16384)], size="1GiB")
    client = openai.OpenAI(base_url=f"{moc.url}/v1", api_key="unused", max_retries=0)
    with httpx.Client(base_url=moc.url) as http:
        pid = load(http, "a")["pid"]
        stream = client.chat.completions.create(
            model="a",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=16000,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        next(iter(stream))
        os.kill(pid, signal.SIGKILL)
        with stream, pytest.raises(openai.APIError) as err:
            for _ in stream:
                pass
        assert isinstance(err.value.body, dict)
        assert (err.value.body["code"], err.value.body["src"]) == ("backend_unavailable", "moc")

        # Not streaming, the backend dies before it answers: moc waits for the
        # restart and sends the request again, once; the client sees a 200.
        killed = pid
        wait_for(lambda: model(http, "a")["pid"] not in (killed, None), timeout=30)
        wait_for(lambda: model(http, "a")["state"] == "ready", timeout=30)
        pid = model(http, "a")["pid"]

        thread, replies = in_background(post, moc.url, chat("a", **LONG))
        wait_for(lambda: running(http) == 1)
        time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        thread.join(60)
        assert replies[0].status_code == 200, replies[0].text
        assert replies[0].json()["usage"]["completion_tokens"] == LONG["max_tokens"]
        assert model(http, "a")["pid"] != pid
        assert metric(http, "moc_requests_retried_total", model="a") == 1
    client.close()


# --- async jobs ----------------------------------------------------------------------
def _job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    reply = http.get(f"/v1/jobs/{job_id}")
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def test_jobs_run_by_priority_report_results_and_can_be_cancelled(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(
        moc_factory, [spec(tiny_models, "a", ctx=2048)], size="1GiB", gateway={"max_in_flight": 1}
    )
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        submit = {"model": "a", "prompt": "hi", "options": {"max_tokens": 4}}
        first = http.post("/v1/jobs", json={**submit, "options": LONG, "metadata": {"n": 0}})
        assert first.status_code == 202, first.text
        blocker = first.json()["job_id"]
        wait_for(lambda: _job(http, blocker)["status"] == "running")
        low = http.post("/v1/jobs", json={**submit, "priority": "low"}).json()["job_id"]
        high = http.post("/v1/jobs", json={**submit, "priority": "high"}).json()["job_id"]
        doomed = http.post("/v1/jobs", json=submit).json()["job_id"]
        cancelled = http.delete(f"/v1/jobs/{doomed}").json()
        assert cancelled["status"] == "cancelled"

        stats = http.get("/v1/stats").json()
        assert stats["jobs"]["by_status"]["cancelled"] == 1
        assert stats["jobs"]["by_priority"]["high"]
        assert stats["models"]["loaded"][0]["model"] == "a"
        assert stats["devices"][0]["id"] == "host"

        wait_for(lambda: _job(http, low)["status"] == "complete", timeout=60)
        done = {j: _job(http, j) for j in (blocker, low, high, doomed)}
        assert done[blocker]["metadata"] == {"n": 0}
        assert done[blocker]["result"]["usage"]["completion_tokens"] == LONG["max_tokens"]
        assert done[high]["output"]
        assert done[high]["status"] == "complete"
        assert done[high]["started_at"] < done[low]["started_at"]  # high went first
        assert done[doomed]["status"] == "cancelled"
        assert done[doomed]["started_at"] is None
        listed = http.get("/v1/jobs", params={"status": "complete"}).json()["data"]
        assert {j["job_id"] for j in listed} == {blocker, low, high}

        bad = http.post("/v1/jobs", json={"model": "a"})
        assert bad.status_code == 400
        assert "prompt or messages" in bad.json()["error"]["message"]
        assert http.post("/v1/jobs", json={**submit, "model": "nope"}).status_code == 404
        assert http.get("/v1/jobs/job_nope").json()["error"]["code"] == "job_not_found"


def test_jobs_survive_kill9_of_moc(moc_factory: Factory, tiny_models: dict[str, Path]) -> None:
    moc = start(
        moc_factory, [spec(tiny_models, "a", ctx=2048)], size="1GiB", gateway={"max_in_flight": 1}
    )
    with httpx.Client(base_url=moc.url) as http:
        load(http, "a")
        submit = {"model": "a", "prompt": "hi", "options": {"max_tokens": 4}}
        ids = [http.post("/v1/jobs", json={**submit, "options": LONG}).json()["job_id"]]
        ids += [http.post("/v1/jobs", json=submit).json()["job_id"] for _ in range(5)]
        wait_for(lambda: _job(http, ids[0])["status"] == "running")
    moc.kill9()
    moc.start()
    with httpx.Client(base_url=moc.url) as http:
        wait_for(lambda: all(_job(http, j)["status"] == "complete" for j in ids), timeout=90)
        assert _job(http, ids[0])["attempts"] == 1  # interrupted once, then run again
        # The running job and those already in the scheduler's queue were put
        # back; how many had left `pending` when moc died depends on timing.
        starts = re.findall(r'"jobs_requeued":(\d+)', moc.log())
        assert len(starts) == 2
        assert 1 <= int(starts[-1]) <= len(ids)


def test_moc_submit_random_waits_for_results(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(moc_factory, [spec(tiny_models, "a"), spec(tiny_models, "b")], size="1GiB")
    done = subprocess.run(
        [sys.executable, "-m", "moc", "submit", "--random", "6", "--seed", "3", "--json"],
        env={**os.environ, "MOC_URL": moc.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    jobs = json.loads(done.stdout)
    assert len(jobs) == 6
    assert {j["status"] for j in jobs} == {"complete"}
    assert {j["model"] for j in jobs} <= {"a", "b"}


async def test_sdk_clients_submit_follow_and_cancel_jobs(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    server = start(moc_factory, [spec(tiny_models, "a")], size="1GiB")
    with moc.Client(server.url) as client:
        job = client.submit_job("a", prompt="hi", options={"max_tokens": 4}, metadata={"k": 1})
        wait_for(lambda: client.job(job["job_id"])["status"] == "complete", timeout=30)
        assert client.job(job["job_id"])["metadata"] == {"k": 1}
        assert client.stats()["jobs"]["by_status"]["complete"] == 1
        with pytest.raises(moc.JobNotFound):
            client.job("job_missing")
        with pytest.raises(moc.ModelNotFound):
            client.submit_job("nope", prompt="hi")
    async with moc.AsyncClient(server.url) as aclient:
        queued = await aclient.submit_job("a", messages=[{"role": "user", "content": "hi"}])
        assert queued["status"] == "pending"
        ended = await aclient.cancel_job(queued["job_id"])
        assert ended["status"] in ("cancelled", "complete")  # it may have finished first
        assert (await aclient.job(queued["job_id"]))["status"] == ended["status"]
