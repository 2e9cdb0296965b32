"""The seed's load targets, against one ``moc serve``:

(a) open loop, ``--rate`` (1,000) requests/s for ``--seconds`` (30) of mixed
    inference — chat completions, completions and embeddings, json and
    streamed, high/normal/low priority — to three ``backend: openai`` models
    behind a fast responder, while a side task loads ``--loads`` (50) tiny
    llama.cpp models one after another through ``POST /v1/models/{name}/load``.
    The three tiny models reserve 1.5, 1.6 and 1.7 GiB of a 4 GiB host device
    (3.6 GiB handed out), so two fit and every load after the second evicts
    one. Target (blueprint §10): p99 < 120 ms, moc's CPU < 65 %.
(b) closed loop, ``--clients`` (500) concurrent chat completions for
    ``--seconds``. Target (blueprint §8): p95 < 50 ms.

moc's CPU is psutil's account of moc's own process, not of the llama.cpp
servers it started (those are reported apart, dead ones included up to their
last sample). Every request is timed from when it was due (open loop) or
sent (closed loop). On a small machine the load generator, the responder and
moc share the cores; their CPU is reported too.

    python benchmarks/seed_load.py [--seconds 30] [--rate 1000] [--loads 50] [--clients 500]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen
from lease_ops import start_moc
from mixed_load import (
    Kind,
    OpenLoop,
    Sent,
    Watch,
    by_status,
    cpu_seconds,
    fmt,
    machine,
    met,
    overlapping,
    pct,
    start_responder,
    table,
)

from moc.models.tiny import TinySpec, write_tiny_gguf

TINY = (("tiny-a", "1.5GiB"), ("tiny-b", "1.6GiB"), ("tiny-c", "1.7GiB"))
MESSAGES = b'"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8'
PROMPT = b'"prompt": "def fizzbuzz(n):", "max_tokens": 8'


def kinds() -> list[Kind]:
    def chat(stream: bool) -> bytes:
        return b'{"model": "chat", %s%s}' % (MESSAGES, b', "stream": true' if stream else b"")

    def completion(stream: bool) -> bytes:
        return b'{"model": "code", %s%s}' % (PROMPT, b', "stream": true' if stream else b"")

    high, low = (("x-moc-priority", "high"),), (("x-moc-priority", "low"),)
    return [
        Kind("chat json normal", "/v1/chat/completions", chat(False), 25),
        Kind("chat json high", "/v1/chat/completions", chat(False), 10, high),
        Kind("chat stream normal", "/v1/chat/completions", chat(True), 15),
        Kind("completion json low", "/v1/completions", completion(False), 15, low),
        Kind("completion stream high", "/v1/completions", completion(True), 10, high),
        Kind(
            "embedding normal",
            "/v1/embeddings",
            b'{"model": "embed", "input": "a sentence to embed"}',
            15,
        ),
        Kind(
            "embedding low (body field)",
            "/v1/embeddings",
            b'{"model": "embed", "input": "another one", "priority": "low"}',
            10,
        ),
    ]


def moc_config(responder_port: int, folder: Path) -> str:
    url = f"http://127.0.0.1:{responder_port}/v1"
    remote = [
        f"{{name: {name}, backend: openai, url: '{url}', parallel: 64}}"
        for name in ("chat", "code", "embed")
    ]
    tiny = []
    for i, (name, memory) in enumerate(TINY):
        path = write_tiny_gguf(folder / f"{name}.gguf", TinySpec(name, seed=i))
        tiny.append(f"{{name: {name}, path: '{path}', ctx: 512, memory: {memory}}}")
    return f"runtimes: {{llamacpp: {{threads: 1}}}}\nmodels: [{', '.join(remote + tiny)}]\n"


@dataclass(frozen=True)
class Load:
    model: str
    t0: float
    t1: float
    status: int
    held: int  # the device's bytes held (ledger) after the load
    capacity: int  # and what moc may hand out on it

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0


def evictions(url: str) -> int:
    """Models stopped to make room (``moc_model_evictions_total{reason="memory"}``)."""
    text = httpx.get(f"{url}/metrics", trust_env=False).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("moc_model_evictions_total{") and 'reason="memory"' in line
    )


def load_models(url: str, count: int, every_s: float, out: list[Load]) -> None:
    """``count`` loads, one every ``every_s`` (or at once when behind), cycling
    through the tiny models so that each one, after the first two, evicts."""
    with httpx.Client(base_url=url, trust_env=False, timeout=120) as http:
        next_at = time.monotonic()
        for i in range(count):
            time.sleep(max(0.0, next_at - time.monotonic()))
            name = TINY[i % len(TINY)][0]
            t0 = time.monotonic()
            try:
                status = http.post(f"/v1/models/{name}/load").status_code
            except httpx.HTTPError:
                status = 0
            t1 = time.monotonic()
            device = http.get("/v1/devices/host").json()
            out.append(Load(name, t0, t1, status, device["held_bytes"], device["capacity_bytes"]))
            next_at += every_s


# --- (b): the closed loop, with the generator's own CPU ---------------------------------
def _closed_child(conn: Any, args: tuple[Any, ...]) -> None:
    cpu0 = time.process_time()
    result = asyncio.run(loadgen._run(*args))
    conn.send((result, time.process_time() - cpu0))


def closed_loop(
    url: str, body: bytes, clients: int, seconds: float
) -> tuple[loadgen.Result, float]:
    """loadgen's closed loop (1 s warm-up), and its process's CPU seconds."""
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_closed_child, args=(child, (url, "POST", body, clients, seconds, 1.0))
    )
    proc.start()
    result, cpu = parent.recv()
    proc.join()
    return result, cpu


# --- reporting ---------------------------------------------------------------------------
def windows_table(sent: Sent, loads: list[Load], watch: Watch, window: float) -> str:
    """Per window of the run, by when requests were due: where the tail came from."""
    rows = []
    start = sent.started
    while start < sent.stopped:
        end = start + window
        mine = [r.ms for r in sent.records if start <= r.due < end and r.status]
        rows.append(
            (
                f"{start - sent.started:.0f}–{end - sent.started:.0f}",
                len(mine),
                fmt(pct(mine, 0.5), 1),
                fmt(pct(mine, 0.99), 1),
                sum(1 for ld in loads if start <= ld.t0 < end),
                fmt(watch.cpu_percent(start, end), 0),
                fmt(watch.cpu_percent(start, end, children=True), 0),
                fmt(pct(watch.health_ms(start, end), 0.99), 1),
                fmt(pct(watch.health_ms(start, end, control=True), 0.99), 1),
            )
        )
        start = end
    return table(
        [
            "s",
            "sent",
            "p50 ms",
            "p99 ms",
            "loads begun",
            "moc CPU %",
            "llama.cpp CPU %",
            "/health p99 ms",
            "control p99 ms",
        ],
        rows,
    )


def open_loop_report(
    sent: Sent, loads: list[Load], watch: Watch, gen_cpu: float, responder_cpu: float
) -> tuple[list[str], dict[str, float]]:
    t0, t1 = sent.started, sent.stopped
    span = t1 - t0
    records = sent.records
    during = overlapping(records, [(ld.t0, ld.t1) for ld in loads])
    in_run = [ld for ld in loads if ld.t0 < t1]
    ok_loads = sorted(ld.seconds * 1000 for ld in loads if ld.status == 200)
    samples = watch.between(t0, t1)
    nan = float("nan")
    rss = [s.rss / (1 << 20) for s in samples]
    answered = [r.ms for r in records if r.status == 200]
    figures = {
        "rate": sent.rate,
        "p99": pct([r.ms for r in records if r.status], 0.99),
        "p99_loads": pct([r.ms for r in during if r.status], 0.99),
        "cpu": watch.cpu_percent(t0, t1),
        "errors": sum(1 for r in records if r.status != 200),
        "loads_ok": len(ok_loads),
        "loads_in_run": len(in_run),
        "held_max": max((ld.held for ld in loads), default=0) / (1 << 30),
        "capacity": max((ld.capacity for ld in loads), default=0) / (1 << 30),
    }
    lines = [
        table(
            ["requests", "sent/s", "answered 200", "p50 ms", "p95 ms", "p99 ms", "by status"],
            [
                (
                    "whole run",
                    fmt(sent.rate, 0),
                    len(answered),
                    fmt(pct(answered, 0.5), 2),
                    fmt(pct(answered, 0.95), 2),
                    fmt(figures["p99"], 2),
                    by_status(records),
                ),
                (
                    "due while a load ran",
                    "",
                    sum(1 for r in during if r.status == 200),
                    fmt(pct([r.ms for r in during], 0.5), 2),
                    fmt(pct([r.ms for r in during], 0.95), 2),
                    fmt(figures["p99_loads"], 2),
                    by_status(during),
                ),
            ],
        ),
        "",
        table(
            ["kind", "requests", "p50 ms", "p99 ms", "by status"],
            [
                (
                    kind.name,
                    len(mine := [r for r in records if r.kind == i]),
                    fmt(pct([r.ms for r in mine], 0.5), 2),
                    fmt(pct([r.ms for r in mine], 0.99), 2),
                    by_status(mine),
                )
                for i, kind in enumerate(kinds())
            ],
        ),
        "",
        table(
            ["loads", "done (200)", "started during the traffic", "p50 ms", "p95 ms", "max ms"],
            [
                (
                    len(loads),
                    len(ok_loads),
                    len(in_run),
                    fmt(pct(ok_loads, 0.5)),
                    fmt(pct(ok_loads, 0.95)),
                    fmt(max(ok_loads) if ok_loads else float("nan")),
                )
            ],
        ),
        "",
        table(
            ["GET /health every 100 ms", "p50 ms", "p99 ms", "control p99 ms"],
            [
                (
                    label,
                    fmt(pct(watch.health_in(spans), 0.5), 2),
                    fmt(pct(watch.health_in(spans), 0.99), 2),
                    fmt(pct(watch.health_in(spans, control=True), 0.99), 2),
                )
                for label, spans in (
                    ("whole run", [(t0, t1)]),
                    ("while a load ran", [(ld.t0, ld.t1) for ld in loads]),
                )
            ],
        ),
        "",
        windows_table(sent, loads, watch, 5.0),
        "",
        table(
            ["process", "CPU % of one core", "note"],
            [
                (
                    "moc (own process)",
                    fmt(figures["cpu"], 0),
                    f"RSS {fmt(min(rss, default=nan))}–{fmt(max(rss, default=nan))} MiB",
                ),
                (
                    "moc's llama.cpp servers",
                    fmt(watch.cpu_percent(t0, t1, children=True), 0),
                    "loads and idle runtimes",
                ),
                ("load generator", fmt(100 * gen_cpu / span, 0), "its own process"),
                ("responder", fmt(100 * responder_cpu / span, 0), "its own process"),
            ],
        ),
    ]
    return lines, figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--loads", type=int, default=50)
    parser.add_argument("--clients", type=int, default=500)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="moc-bench-seed-"))
    responder, responder_port = start_responder()
    moc, moc_port, _ = start_moc(tmp, moc_config(responder_port, tmp))
    url = f"http://127.0.0.1:{moc_port}"
    out: list[str] = []
    try:
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
            for kind in kinds():  # each route once, and the models' files read once
                reply = http.post(kind.path, content=kind.body, headers=dict(kind.headers))
                if reply.status_code != 200:
                    sys.exit(f"{kind.name}: HTTP {reply.status_code} {reply.text[:300]}")
        watch = Watch(url, moc.pid).start()

        # (a) open loop, mixed, with loads beside it
        responder_cpu0 = cpu_seconds(responder.pid or 0)
        generator = OpenLoop(url, kinds(), rate=args.rate, seconds=args.seconds).start()
        loads: list[Load] = []
        loader = threading.Thread(
            target=load_models,
            # the last load starts 5 % before the traffic ends
            args=(url, args.loads, 0.95 * args.seconds / max(1, args.loads), loads),
            daemon=True,
        )
        generator.begun.wait()
        loader.start()
        sent = generator.result()
        responder_cpu = cpu_seconds(responder.pid or 0) - responder_cpu0
        loader.join()
        evicted = evictions(url)
        lines, a = open_loop_report(sent, loads, watch, sent.cpu_s, responder_cpu)
        out += [
            f"### (a) open loop: {args.rate:g} requests/s of mixed inference for "
            f"{args.seconds:g} s, {args.loads} model loads beside it",
            "",
            *lines,
            "",
            f"Models evicted to make room for a load: {evicted}.",
        ]

        # (b) closed loop: 500 concurrent clients, through moc and, for the
        # machine's ceiling, straight to the responder
        body = b'{"model": "chat", %s}' % MESSAGES
        t0 = time.monotonic()
        closed, gen_cpu = closed_loop(
            f"{url}/v1/chat/completions", body, args.clients, args.seconds
        )
        t1 = time.monotonic()
        b_cpu = watch.cpu_percent(t1 - args.seconds, t1)
        watch.stop()
        direct_url = f"http://127.0.0.1:{responder_port}/v1/chat/completions"
        direct, direct_cpu = closed_loop(direct_url, body, args.clients, args.seconds)
        rows = [
            ("moc", closed, fmt(b_cpu, 0), 100 * gen_cpu / (t1 - t0)),
            ("direct to the responder", direct, "", 100 * direct_cpu / (args.seconds + 1)),
        ]
        out += [
            "",
            f"### (b) closed loop: {args.clients} concurrent clients for {args.seconds:g} s "
            "(chat completions, json)",
            "",
            table(
                [
                    "path",
                    "req/s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "non-2xx / errors",
                    "moc CPU %",
                    "load generator CPU %",
                ],
                [
                    (
                        name,
                        fmt(r.rps, 0),
                        fmt(r.p50_ms, 2),
                        fmt(r.p95_ms, 2),
                        fmt(r.p99_ms, 2),
                        f"{r.non_2xx} / {r.errors}",
                        cpu,
                        fmt(gen, 0),
                    )
                    for name, r, cpu, gen in rows
                ],
            ),
            "",
            f"With {args.clients} clients each waiting for its answer, latency is clients ÷ "
            f"throughput (Little's law): p95 < 50 ms needs about {args.clients / 0.05:,.0f} "
            "requests/s.",
        ]
        out += [
            "",
            "### seed targets",
            "",
            table(
                ["target", "measured", ""],
                [
                    (
                        f"open loop sustains {args.rate:g} requests/s",
                        f"{a['rate']:.0f} sent/s",
                        met(a["rate"] >= 0.98 * args.rate),
                    ),
                    ("p99 < 120 ms, whole run", f"{a['p99']:.1f} ms", met(a["p99"] < 120)),
                    (
                        "p99 < 120 ms, due while a load ran",
                        f"{fmt(a['p99_loads'])} ms",
                        met(a["p99_loads"] < 120),
                    ),
                    ("moc CPU < 65 % (of one core)", f"{a['cpu']:.0f} %", met(a["cpu"] < 65)),
                    (
                        f"{args.loads} model loads during the run",
                        f"{a['loads_ok']} done, {a['loads_in_run']} started during the traffic",
                        met(a["loads_ok"] == args.loads and a["loads_in_run"] == args.loads),
                    ),
                    (
                        "memory held ≤ moc's share of the device (ledger, after each load)",
                        f"max {a['held_max']:.2f} of {a['capacity']:.2f} GiB",
                        met(0 < a["held_max"] <= a["capacity"]),
                    ),
                    ("no failed requests", f"{a['errors']:.0f} not 200", met(a["errors"] == 0)),
                    (
                        f"{args.clients} concurrent calls: p95 < 50 ms",
                        f"{closed.p95_ms:.1f} ms",
                        met(closed.p95_ms < 50),
                    ),
                ],
            ),
        ]
    finally:
        moc.terminate()
        moc.wait()
        responder.terminate()
        responder.join()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{stamp}; {machine()}; moc, responder and load generator share them\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
