"""Ten times a model's capacity for ten seconds, end to end: a real ``moc
serve`` in front of a real llama.cpp server (a tiny GGUF model, one slot,
long answers), driven open loop by ``httpx``.

moc must shed what it cannot queue at once (429 ``queue_full`` with
``Retry-After``), answer what waited too long with the documented 503
``queue_timeout`` and nothing else, keep answering ``/health`` throughout,
and be back to normal when the load stops. ``benchmarks/overload.py`` is the
long version, with figures.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.support import Factory, load, metric, spec, start, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_stray_runtimes")]

SECONDS = 10.0
FACTOR = 10
# Each answer is 400 tokens from one slot: about 0.1–0.5 s on a small machine,
# so 10× its capacity is tens of requests a second, which a shared test
# machine can offer without the client becoming the bottleneck.
BODY = {
    "model": "a",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 400,
    "ignore_eos": True,
}
MAX_RATE = 100.0  # requests/s; beyond, the test's own client is the bottleneck
QUEUE = {"max_waiting": 10, "timeout_s": 1.0}
# /health is answered by moc's event loop between the requests it sheds;
# the seed's goal is p99 < 50 ms, but this machine is shared with other test
# runs (two cores, llama.cpp busy on one), so the test allows five times that.
HEALTH_P99_MS = 250.0


async def offer(url: str, rate: float, seconds: float) -> list[httpx.Response]:
    """Open loop: a request every 1/rate s, whatever the answers do."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        tasks = []
        start_at = time.monotonic()
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start_at + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(client.post("/v1/chat/completions", json=BODY)))
        return await asyncio.gather(*tasks)


def probe_health(url: str, stop: threading.Event, out: list[tuple[float, int]]) -> None:
    """GET /health every 100 ms with a client of its own: (ms, status)."""
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                status = http.get("/health").status_code
            except httpx.HTTPError:
                status = 0
            out.append(((time.monotonic() - t0) * 1000, status))
            stop.wait(0.1)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def queued(http: httpx.Client) -> float:
    return sum(metric(http, "moc_queue_depth", priority=p) for p in ("high", "normal", "low"))


def timed_request(http: httpx.Client) -> float:
    """Seconds for one request, which must be served."""
    t0 = time.monotonic()
    reply = http.post("/v1/chat/completions", json=BODY)
    assert reply.status_code == 200, reply.text
    return time.monotonic() - t0


def in_flight(http: httpx.Client) -> float:
    """``moc_requests_in_flight`` (a gauge without labels)."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("moc_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("moc_requests_in_flight is missing from /metrics")


def test_ten_times_capacity_sheds_with_retry_after_and_recovers(
    moc_factory: Factory, tiny_models: dict[str, Path]
) -> None:
    moc = start(
        moc_factory,
        [spec(tiny_models, "a", parallel=1)],
        runtimes={"llamacpp": {"threads": 1}},
        gateway={"queues": {"normal": QUEUE}},
        log={"level": "warning"},
    )
    with httpx.Client(base_url=moc.url, timeout=60) as http:
        load(http, "a")
        alone = statistics.median(timed_request(http) for _ in range(3))
        rate = min(MAX_RATE, FACTOR / alone)  # one slot: capacity is 1 / alone

        health: list[tuple[float, int]] = []
        stop = threading.Event()
        prober = threading.Thread(target=probe_health, args=(moc.url, stop, health))
        prober.start()
        try:
            answers = asyncio.run(offer(moc.url, rate, SECONDS))
        finally:
            stop.set()
            prober.join()

        by_status: dict[Any, int] = {}
        for r in answers:
            key = r.status_code if r.status_code != 503 else (503, r.json()["error"]["code"])
            by_status[key] = by_status.get(key, 0) + 1
        context = f"{len(answers)} requests at {rate:.0f}/s: {by_status}"
        # Overloaded: most were shed at once, and some were served.
        assert by_status.get(429, 0) > len(answers) / 2, context
        assert by_status.get(200, 0) > 0, context
        # Nothing but 200, 429 and the documented 503 queue_timeout.
        assert set(by_status) <= {200, 429, (503, "queue_timeout")}, context
        for r in answers:
            if r.status_code == 429:
                assert r.json()["error"]["code"] == "queue_full"
                assert int(r.headers["retry-after"]) >= 1

        # /health answered throughout, quickly enough.
        assert len(health) >= SECONDS * 5, f"only {len(health)} health probes in {SECONDS} s"
        assert all(status == 200 for _, status in health), health
        assert p99([ms for ms, _ in health]) < HEALTH_P99_MS, sorted(ms for ms, _ in health)[-5:]

        # Recovery: the queue is empty and a request is served normally.
        wait_for(lambda: queued(http) == 0, timeout=5)
        assert timed_request(http) < max(3.0, 5 * alone)
        wait_for(lambda: in_flight(http) == 0, timeout=5)
