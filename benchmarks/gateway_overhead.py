"""What does moc's gateway add to a request, next to a bare proxy? Measure,
side by side in one run, POST /v1/chat/completions (non-streaming and
``"stream": true``) through:

- direct: straight to a fast OpenAI-compatible responder (the reference;
  ``upstream_client.serve_backend``, a fixed answer or 8 SSE events);
- bare proxy: Starlette on uvicorn forwarding with one ``aiohttp.ClientSession``
  (``upstream_client.serve_aiohttp``), each in its own process;
- moc: ``moc serve`` with one ``backend: openai`` model whose url is the same
  responder, and a gateway queue large enough not to limit the measurement.

The load generator (``loadgen``, closed loop, its own process) is the same for
all. Per path and mode: at 1 client p50/p99 and what they add over direct (for
streaming also the time to the first body bytes); at 50 and 500 clients
requests/s, p95/p99 and the proxy process's CPU seconds per 1,000 requests
(psutil ``cpu_times`` around the run); the proxies' RSS at the end.

With ``--llama`` it adds moc against the llama.cpp server moc started for a
tiny generated GGUF (``max_tokens: 8``), the server's port read from its
command line.

    python benchmarks/gateway_overhead.py [--seconds 5] [--skip-500] [--llama]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))
from lease_ops import start_moc  # noqa: E402
from loadgen import Result, run_in_process, run_rate_in_process  # noqa: E402
from upstream_client import PATH, _start, serve_aiohttp, serve_backend  # noqa: E402

MODES = ("json", "stream")
# moc's per-model limit on concurrent requests: above the largest client count.
PARALLEL = 1000
GATEWAY = (
    "gateway: {max_in_flight: 5000, queues: {normal: {max_waiting: 100000, timeout_s: 300}}}\n"
)


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # the chat completions URL
    pid: int | None  # the proxy process to account CPU and memory to
    model: str


@dataclass(frozen=True)
class Loaded:
    """One run under load: the result and the proxy's CPU seconds per 1,000 requests."""

    result: Result
    cpu_per_1k: float


def body(model: str, mode: str) -> bytes:
    stream = b', "stream": true' if mode == "stream" else b""
    return (
        b'{"model": "%s", "messages": [{"role": "user", "content": "Say hello."}], '
        b'"max_tokens": 8%s}' % (model.encode(), stream)
    )


def moc_config(responder_port: int, tiny: Path | None) -> str:
    models = [
        f"{{name: fast, backend: openai, url: 'http://127.0.0.1:{responder_port}/v1', "
        f"parallel: {PARALLEL}}}"
    ]
    if tiny is not None:
        models.append(f"{{name: tiny, path: '{tiny}', ctx: 512, parallel: 4}}")
    return GATEWAY + f"models: [{', '.join(models)}]\n"


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / (1 << 20)


def probe(http: httpx.Client, targets: list[Target]) -> list[str]:
    """One request per path and mode; notes where the answer is not 200 or differs."""
    notes = []
    for mode in MODES:
        answers = {}
        for t in targets:
            resp = http.post(t.url, content=body(t.model, mode))
            answers[t.name] = resp.content
            if resp.status_code != 200:
                notes.append(f"{t.name} {mode}: HTTP {resp.status_code} {resp.text[:200]!r}")
        if len(set(answers.values())) != 1:
            notes.append(f"{mode}: the paths' answers differ in their bytes")
    return notes


def at_one(target: Target, mode: str, seconds: float) -> Result:
    return run_in_process(
        target.url,
        method="POST",
        body=body(target.model, mode),
        concurrency=1,
        seconds=seconds,
        ttfb=mode == "stream",
    )


def under_load(target: Target, mode: str, clients: int, seconds: float) -> Loaded:
    data = body(target.model, mode)
    run_in_process(target.url, method="POST", body=data, concurrency=clients, seconds=0.5, warmup=0)
    before = cpu_seconds(target.pid) if target.pid else None
    result = run_in_process(
        target.url, method="POST", body=data, concurrency=clients, seconds=seconds, warmup=0
    )
    if before is None or target.pid is None:
        return Loaded(result, float("nan"))
    spent = cpu_seconds(target.pid) - before
    return Loaded(result, spent * 1000 / max(1, result.requests + result.errors))


def bad(result: Result) -> str:
    return f"{result.non_2xx}/{result.errors}"


def table_one(targets: list[Target], seconds: float, notes: list[str]) -> None:
    print("\n| mode | path | p50 ms | p99 ms | added p50 ms | added p99 ms | ", end="")
    print("TTFB p50 ms | TTFB p99 ms | non-2xx/errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        direct: Result | None = None
        for t in targets:
            r = at_one(t, mode, seconds)
            direct = direct or r
            add50, add99 = r.p50_ms - direct.p50_ms, r.p99_ms - direct.p99_ms
            print(
                f"| {mode} | {t.name} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {add50:+.3f} | "
                f"{add99:+.3f} | {r.ttfb_p50_ms:.3f} | {r.ttfb_p99_ms:.3f} | {bad(r)} |",
                flush=True,
            )
            if t.name == "moc" and (add50 > 0.6 or add99 > 1.5):
                notes.append(f"c=1 {mode}: moc adds {add50:.3f} ms p50, {add99:.3f} ms p99")


def table_load(
    targets: list[Target], clients: list[int], seconds: float, notes: list[str], ref: str
) -> None:
    print(f"\n| mode | clients | path | req/s | vs {ref} | p95 ms | p99 ms | ", end="")
    print("proxy CPU s / 1k req | non-2xx/errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        for n in clients:
            rows = {t.name: under_load(t, mode, n, seconds) for t in targets}
            for name, loaded in rows.items():
                r, cpu = loaded.result, loaded.cpu_per_1k
                share = r.rps / rows[ref].result.rps if rows[ref].result.rps else float("nan")
                print(
                    f"| {mode} | {n} | {name} | {r.rps:.0f} | {share:.0%} | {r.p95_ms:.2f} | "
                    f"{r.p99_ms:.2f} | {cpu:.3f} | {bad(r)} |",
                    flush=True,
                )
                if name == "moc" and n == 50 and ref == "bare proxy" and share < 0.7:
                    notes.append(f"c=50 {mode}: moc at {share:.0%} of the bare proxy's req/s")


def table_rate(targets: list[Target], rate: float, seconds: float) -> None:
    """The seed's p99 at a fixed offered rate, each request timed from when it was due."""
    print("\n| path | sent/s | p50 ms | p95 ms | p99 ms | proxy CPU % | non-2xx/errors |")
    print("|---|---|---|---|---|---|---|")
    for target in targets:
        before = cpu_seconds(target.pid) if target.pid else 0.0
        r = run_rate_in_process(
            target.url, rate=rate, seconds=seconds, body=body(target.model, "json")
        )
        cpu = (cpu_seconds(target.pid) - before) / r.seconds * 100 if target.pid else float("nan")
        print(
            f"| {target.name} | {r.requests / r.seconds:.0f} | {r.p50_ms:.2f} | {r.p95_ms:.2f} "
            f"| {r.p99_ms:.2f} | {cpu:.0f} | {bad(r)} |"
        )


def llama_targets(http: httpx.Client, moc_url: str, moc_pid: int) -> list[Target]:
    """Load ``tiny`` through moc, and find its llama.cpp server's port."""
    http.post(f"{moc_url}/v1/models/tiny/load", timeout=120).raise_for_status()
    view = http.get(f"{moc_url}/v1/models/tiny").raise_for_status().json()
    argv = psutil.Process(view["pid"]).cmdline()
    port = int(argv[argv.index("--port") + 1])
    return [
        Target("direct llama.cpp", f"http://127.0.0.1:{port}{PATH}", None, "tiny"),
        Target("moc", f"{moc_url}{PATH}", moc_pid, "tiny"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--skip-500", action="store_true", help="no run with 500 clients")
    parser.add_argument("--llama", action="store_true", help="also moc vs a tiny llama.cpp model")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="open-loop requests/s for the seed's figure"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="moc-bench-gateway-"))
    tiny = None
    if args.llama:
        from moc.models.tiny import TinySpec, write_tiny_gguf

        tiny = write_tiny_gguf(tmp / "tiny.gguf", TinySpec("tiny"))
    responder, responder_port = _start(serve_backend)
    bare, bare_port = _start(serve_aiohttp, f"http://127.0.0.1:{responder_port}")
    moc, moc_port, _ = start_moc(tmp, moc_config(responder_port, tiny))
    moc_url = f"http://127.0.0.1:{moc_port}"
    targets = [
        Target("direct", f"http://127.0.0.1:{responder_port}{PATH}", None, "fast"),
        Target("bare proxy", f"http://127.0.0.1:{bare_port}{PATH}", bare.pid, "fast"),
        Target("moc", f"{moc_url}{PATH}", moc.pid, "fast"),
    ]
    clients = [50] if args.skip_500 else [50, 500]
    try:
        with httpx.Client(trust_env=False, timeout=60) as http:
            notes = probe(http, targets)
            print(f"\nmachine: {os.cpu_count()} CPUs; {args.seconds:g} s per run\n")
            print("### fast responder, 1 client")
            table_one(targets, args.seconds, notes)
            print("\n### fast responder, under load")
            table_load(targets, clients, args.seconds, notes, "bare proxy")
            print(f"\n### open loop: {args.rate:g} requests/s for {args.seconds:g} s (json)")
            table_rate(targets, args.rate, args.seconds)
            print("\n| process | RSS at end, MiB |\n|---|---|")
            print(f"| bare proxy | {rss_mib(bare.pid):.1f} |\n| moc | {rss_mib(moc.pid):.1f} |")
            if args.llama:
                llama = llama_targets(http, moc_url, moc.pid)
                notes += [f"llama: {n}" for n in probe(http, llama) if "differ" not in n]
                print("\n### tiny llama.cpp model (max_tokens 8), 1 client")
                table_one(llama, args.seconds, [])
                print("\n### tiny llama.cpp model, under load")
                table_load(llama, [50], args.seconds, [], "direct llama.cpp")
        print("\n" + "\n".join(f"- {n}" for n in notes) if notes else "\nall targets met")
    finally:
        moc.terminate()
        moc.wait()
        for proc in (bare, responder):
            proc.terminate()
            proc.join()


if __name__ == "__main__":
    main()
