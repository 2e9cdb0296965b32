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
all. Per path and mode: at 1 client (the paths taking turns, five short runs
each, medians of the runs) p50/p95/p99 and what they add over direct (for
streaming also the time to the first body bytes); at 50 and 500 clients
requests/s, p95/p99 and the proxy process's CPU seconds per 1,000 requests
(psutil ``cpu_times`` around the run); the proxies' RSS at the end.

With ``--litellm`` LiteLLM's proxy (``litellm_proxy``: its own venv, one
worker, no database, the responder as its one model) is a fourth path,
measured the same way except for the open-loop row (it is slower than the
offered rate, so that row would measure only its backlog); CPU and RSS count
its worker processes too. A last table sets moc's added latency and CPU per
request against LiteLLM's (goal: at most a fifth) and the bare proxy's (goal:
at most 1.5 times).

With ``--llama`` it adds moc against the llama.cpp server moc started for a
tiny generated GGUF (``max_tokens: 8``), the server's port read from its
command line.

With ``--compare-with SRC`` a second moc, run from another source tree's
``src`` folder (an earlier commit checked out with ``git worktree add``), is
one more path, ``moc (other tree)``, measured in the same turns: a change's
cost is read side by side in one run, not across runs on a noisy machine.

    python benchmarks/gateway_overhead.py [--seconds 5] [--skip-500] [--llama]
        [--litellm [--litellm-python PATH]] [--compare-with SRC]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))
import litellm_proxy  # noqa: E402
from lease_ops import free_port, start_moc  # noqa: E402
from loadgen import Result, run_in_process, run_rate_in_process  # noqa: E402
from upstream_client import PATH, _start, serve_aiohttp, serve_backend  # noqa: E402

MODES = ("json", "stream")
LITELLM = "LiteLLM"
BARE = "bare proxy"
OTHER = "moc (other tree)"
GOAL_VS_LITELLM = 1 / 5  # moc's added latency and CPU per request: at most this share of LiteLLM's
GOAL_VS_BARE = 1.5  # ... and at most this multiple of the bare proxy's
# moc's per-model limit on concurrent requests: above the largest client count.
PARALLEL = 1000
GATEWAY = (
    "gateway: {max_in_flight: 5000, queues: {normal: {max_waiting: 100000, timeout_s: 300}}}\n"
)


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # the chat completions URL
    pids: tuple[int, ...]  # the proxy's processes, to account CPU and memory to
    model: str
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request


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


def with_children(pid: int) -> tuple[int, ...]:
    """A process and the processes it forked (a proxy's workers)."""
    return (pid, *(child.pid for child in psutil.Process(pid).children(recursive=True)))


def cpu_seconds(pids: tuple[int, ...]) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def rss_mib(pids: tuple[int, ...]) -> float:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / (1 << 20)


def content(answer: bytes, mode: str) -> str:
    """The assistant's text in a chat completion, or joined from its SSE chunks."""
    if mode == "json":
        return str(json.loads(answer)["choices"][0]["message"]["content"])
    events = (line[5:].strip() for line in answer.splitlines() if line.startswith(b"data:"))
    chunks = (json.loads(e) for e in events if e != b"[DONE]")
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def probe(http: httpx.Client, targets: list[Target]) -> list[str]:
    """One request per path and mode; notes where the answer is not 200, where
    a pass-through path changed the bytes, or where a re-encoding one
    (LiteLLM) changed the text."""
    notes = []
    for mode in MODES:
        answers = {}
        for t in targets:
            resp = http.post(t.url, content=body(t.model, mode), headers=t.headers)
            answers[t.name] = resp.content
            if resp.status_code != 200:
                notes.append(f"{t.name} {mode}: HTTP {resp.status_code} {resp.text[:200]!r}")
        if len({v for k, v in answers.items() if k != LITELLM}) != 1:
            notes.append(f"{mode}: the paths' answers differ in their bytes")
        if LITELLM in answers:
            first = next(iter(answers.values()))
            try:
                same = content(answers[LITELLM], mode) == content(first, mode)
            except (ValueError, KeyError, IndexError, TypeError):
                same = False
            if not same:
                notes.append(f"{LITELLM} {mode}: answer differs: {answers[LITELLM][:300]!r}")
    return notes


def at_one(target: Target, mode: str, seconds: float) -> Result:
    return run_in_process(
        target.url,
        method="POST",
        body=body(target.model, mode),
        concurrency=1,
        seconds=seconds,
        ttfb=mode == "stream",
        headers=target.headers,
    )


def under_load(target: Target, mode: str, clients: int, seconds: float) -> Loaded:
    data = body(target.model, mode)
    run_in_process(
        target.url,
        method="POST",
        body=data,
        concurrency=clients,
        seconds=0.5,
        warmup=0,
        headers=target.headers,
    )
    before = cpu_seconds(target.pids)
    result = run_in_process(
        target.url,
        method="POST",
        body=data,
        concurrency=clients,
        seconds=seconds,
        warmup=0,
        headers=target.headers,
    )
    if not target.pids:
        return Loaded(result, float("nan"))
    spent = cpu_seconds(target.pids) - before
    return Loaded(result, spent * 1000 / max(1, result.requests + result.errors))


def bad(result: Result) -> str:
    return f"{result.non_2xx}/{result.errors}"


ROUNDS = 5  # the 1-client runs alternate the paths this many times


def table_one(
    targets: list[Target], seconds: float, notes: list[str]
) -> dict[tuple[str, str], Result]:
    """The 1-client rows; returns them by (mode, path), the first path being direct.
    The paths take turns, ROUNDS short runs each; a row holds the medians of its
    rounds, so a moment the machine was busy weighs on every path alike."""
    print("\n| mode | path | p50 ms | p95 ms | p99 ms | added p50 ms | added p95 ms | ", end="")
    print("added p99 ms | TTFB p50 ms | TTFB p99 ms | non-2xx/errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows: dict[tuple[str, str], Result] = {}
    for mode in MODES:
        rounds: dict[str, list[Result]] = {t.name: [] for t in targets}
        for _ in range(ROUNDS):
            for t in targets:
                rounds[t.name].append(at_one(t, mode, seconds / ROUNDS))
        direct: Result | None = None
        for t in targets:
            r = rows[mode, t.name] = Result.median_of(rounds[t.name])
            direct = direct or r
            add50, add99 = r.p50_ms - direct.p50_ms, r.p99_ms - direct.p99_ms
            add95 = r.p95_ms - direct.p95_ms
            print(
                f"| {mode} | {t.name} | {r.p50_ms:.3f} | {r.p95_ms:.3f} | {r.p99_ms:.3f} | "
                f"{add50:+.3f} | {add95:+.3f} | {add99:+.3f} | {r.ttfb_p50_ms:.3f} | "
                f"{r.ttfb_p99_ms:.3f} | {bad(r)} |",
                flush=True,
            )
            if t.name == "moc" and (add50 > 0.6 or add99 > 1.5):
                notes.append(f"c=1 {mode}: moc adds {add50:.3f} ms p50, {add99:.3f} ms p99")
    return rows


def table_load(
    targets: list[Target], clients: list[int], seconds: float, notes: list[str], ref: str
) -> dict[tuple[str, int, str], Loaded]:
    """The rows under load; returns them by (mode, clients, path)."""
    print(f"\n| mode | clients | path | req/s | vs {ref} | p95 ms | p99 ms | ", end="")
    print("proxy CPU s / 1k req | non-2xx/errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    found: dict[tuple[str, int, str], Loaded] = {}
    for mode in MODES:
        for n in clients:
            rows = {t.name: under_load(t, mode, n, seconds) for t in targets}
            found |= {(mode, n, name): loaded for name, loaded in rows.items()}
            for name, loaded in rows.items():
                r, cpu = loaded.result, loaded.cpu_per_1k
                share = r.rps / rows[ref].result.rps if rows[ref].result.rps else float("nan")
                print(
                    f"| {mode} | {n} | {name} | {r.rps:.0f} | {share:.0%} | {r.p95_ms:.2f} | "
                    f"{r.p99_ms:.2f} | {cpu:.3f} | {bad(r)} |",
                    flush=True,
                )
                if name == "moc" and n == 50 and ref == BARE and share < 0.7:
                    notes.append(f"c=50 {mode}: moc at {share:.0%} of the bare proxy's req/s")
    return found


def table_rate(targets: list[Target], rate: float, seconds: float) -> None:
    """The seed's p99 at a fixed offered rate, each request timed from when it was due."""
    print("\n| path | sent/s | p50 ms | p95 ms | p99 ms | proxy CPU % | non-2xx/errors |")
    print("|---|---|---|---|---|---|---|")
    for target in targets:
        before = cpu_seconds(target.pids)
        r = run_rate_in_process(
            target.url,
            rate=rate,
            seconds=seconds,
            body=body(target.model, "json"),
            headers=target.headers,
        )
        spent = cpu_seconds(target.pids) - before
        cpu = spent / r.seconds * 100 if target.pids else float("nan")
        print(
            f"| {target.name} | {r.requests / r.seconds:.0f} | {r.p50_ms:.2f} | {r.p95_ms:.2f} "
            f"| {r.p99_ms:.2f} | {cpu:.0f} | {bad(r)} |"
        )


def ratio(value: float, reference: float) -> float:
    """``value / reference``; NaN where the reference is not a positive number
    (an added latency at or below zero is noise, not a scale)."""
    return value / reference if reference > 0 and math.isfinite(value) else float("nan")


def verdict(share: float, goal: float) -> str:
    return "n/a" if math.isnan(share) else ("met" if share <= goal else "missed")


def measures(
    one: dict[tuple[str, str], Result],
    load: dict[tuple[str, int, str], Loaded],
    mode: str,
    clients: list[int],
    path: str,
) -> dict[str, float]:
    """A path's added latency at 1 client and CPU per request under load, by name."""
    mine, direct = one[mode, path], one[mode, "direct"]
    found = {
        "added p50 ms, 1 client": mine.p50_ms - direct.p50_ms,
        "added p95 ms, 1 client": mine.p95_ms - direct.p95_ms,
        "added p99 ms, 1 client": mine.p99_ms - direct.p99_ms,
    }
    if mode == "stream":
        found["added TTFB p50 ms, 1 client"] = mine.ttfb_p50_ms - direct.ttfb_p50_ms
    for n in clients:
        found[f"CPU ms / request, {n} clients"] = load[mode, n, path].cpu_per_1k
    return found


def table_goals(
    one: dict[tuple[str, str], Result],
    load: dict[tuple[str, int, str], Loaded],
    clients: list[int],
    notes: list[str],
) -> None:
    """moc's added latency and CPU per request against LiteLLM's and the bare proxy's."""
    print(
        f"\n| mode | measure | {BARE} | {LITELLM} | moc | moc / {LITELLM} | "
        f"goal ≤ {GOAL_VS_LITELLM:.2f} | moc / {BARE} | goal ≤ {GOAL_VS_BARE:g}× |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        bares, lites, mocs = (
            measures(one, load, mode, clients, path) for path in (BARE, LITELLM, "moc")
        )
        for measure, moc in mocs.items():
            bare, lite = bares[measure], lites[measure]
            vs_lite, vs_bare = ratio(moc, lite), ratio(moc, bare)
            print(
                f"| {mode} | {measure} | {bare:.3f} | {lite:.3f} | {moc:.3f} | {vs_lite:.3f} | "
                f"{verdict(vs_lite, GOAL_VS_LITELLM)} | {vs_bare:.2f}× | "
                f"{verdict(vs_bare, GOAL_VS_BARE)} |",
                flush=True,
            )
            for share, goal, whose in (
                (vs_lite, GOAL_VS_LITELLM, LITELLM),
                (vs_bare, GOAL_VS_BARE, BARE),
            ):
                if verdict(share, goal) == "missed":
                    notes.append(
                        f"{mode} {measure}: moc at {share:.2f}× {whose}'s (goal ≤ {goal:.2f}×)"
                    )


def failures(
    one: dict[tuple[str, str], Result], load: dict[tuple[str, int, str], Loaded]
) -> list[str]:
    """Per path, the requests that failed or were answered other than 2xx, over all runs."""
    results = [(path, r) for (_, path), r in one.items()]
    results += [(path, loaded.result) for (_, _, path), loaded in load.items()]
    paths = dict.fromkeys(path for path, _ in results)
    notes = []
    for path in paths:
        errors = sum(r.errors for p, r in results if p == path)
        non_2xx = sum(r.non_2xx for p, r in results if p == path)
        if errors or non_2xx:
            notes.append(f"{path}: {errors} failed requests, {non_2xx} non-2xx answers")
    return notes


def llama_targets(http: httpx.Client, moc_url: str, moc_pid: int) -> list[Target]:
    """Load ``tiny`` through moc, and find its llama.cpp server's port."""
    http.post(f"{moc_url}/v1/models/tiny/load", timeout=120).raise_for_status()
    view = http.get(f"{moc_url}/v1/models/tiny").raise_for_status().json()
    argv = psutil.Process(view["pid"]).cmdline()
    port = int(argv[argv.index("--port") + 1])
    return [
        Target("direct llama.cpp", f"http://127.0.0.1:{port}{PATH}", (), "tiny"),
        Target("moc", f"{moc_url}{PATH}", (moc_pid,), "tiny"),
    ]


def litellm_python(args: argparse.Namespace) -> Path | None:
    """The interpreter to run LiteLLM with, building its venv when needed; None without it."""
    if args.litellm_python is not None:
        return Path(args.litellm_python)
    return litellm_proxy.ensure_venv() if args.litellm else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--skip-500", action="store_true", help="no run with 500 clients")
    parser.add_argument("--llama", action="store_true", help="also moc vs a tiny llama.cpp model")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="open-loop requests/s for the seed's figure"
    )
    parser.add_argument(
        "--litellm",
        action="store_true",
        help=f"also LiteLLM's proxy (its venv: {litellm_proxy.DEFAULT_VENV}, built when missing)",
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        metavar="SRC",
        help="another tree's src folder: its moc is one more path, in the same turns",
    )
    parser.add_argument(
        "--litellm-python",
        metavar="PATH",
        help="the interpreter of a venv with litellm[proxy] installed (implies --litellm)",
    )
    args = parser.parse_args()
    try:
        with_litellm = litellm_python(args)
        if with_litellm is not None:
            litellm_proxy.version(with_litellm)
        run(args, with_litellm)
    except litellm_proxy.LiteLLMUnavailable as e:
        sys.exit(f"LiteLLM is not available: {e}")


@contextmanager
def started_litellm(
    python: Path | None, workdir: Path, responder_port: int
) -> Iterator[litellm_proxy.Running | None]:
    if python is None:
        yield None
        return
    running = litellm_proxy.start(python, workdir, "fast", responder_port, free_port())
    try:
        yield running
    finally:
        litellm_proxy.stop(running)


def run(args: argparse.Namespace, with_litellm: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="moc-bench-gateway-"))
    tiny = None
    if args.llama:
        from moc.models.tiny import TinySpec, write_tiny_gguf

        tiny = write_tiny_gguf(tmp / "tiny.gguf", TinySpec("tiny"))
    responder, responder_port = _start(serve_backend)
    bare, bare_port = _start(serve_aiohttp, f"http://127.0.0.1:{responder_port}")
    moc, moc_port, _ = start_moc(tmp, moc_config(responder_port, tiny), src=ROOT / "src")
    moc_url = f"http://127.0.0.1:{moc_port}"
    targets = [
        Target("direct", f"http://127.0.0.1:{responder_port}{PATH}", (), "fast"),
        Target(BARE, f"http://127.0.0.1:{bare_port}{PATH}", (bare.pid or 0,), "fast"),
        Target("moc", f"{moc_url}{PATH}", (moc.pid,), "fast"),
    ]
    other = None
    if args.compare_with is not None:
        src = args.compare_with.resolve()
        config = moc_config(responder_port, None)
        other, other_port, _ = start_moc(tmp / "other", config, src=src, device="other")
        url = f"http://127.0.0.1:{other_port}{PATH}"
        targets.append(Target(OTHER, url, (other.pid,), "fast"))
    clients = [50] if args.skip_500 else [50, 500]
    try:
        with (
            started_litellm(with_litellm, tmp, responder_port) as litellm,
            httpx.Client(trust_env=False, timeout=60) as http,
        ):
            if litellm is not None:
                url = f"http://127.0.0.1:{litellm.port}{PATH}"
                pids = with_children(litellm.proc.pid)
                targets.append(Target(LITELLM, url, pids, "fast", litellm.headers))
            notes = probe(http, targets)
            print(f"\nmachine: {os.cpu_count()} CPUs; {args.seconds:g} s per run")
            if other is not None:
                print(f"{OTHER}: {args.compare_with}")
            if litellm is not None:
                print(f"{LITELLM} {litellm.version}: {' '.join(litellm.command)}")
            print("\n### fast responder, 1 client")
            one = table_one(targets, args.seconds, notes)
            print("\n### fast responder, under load")
            load = table_load(targets, clients, args.seconds, notes, BARE)
            rated = [t for t in targets if t.name != LITELLM]
            print(f"\n### open loop: {args.rate:g} requests/s for {args.seconds:g} s (json)")
            if litellm is not None:
                print(f"({LITELLM} left out: below this rate it would measure only its backlog)")
            table_rate(rated, args.rate, args.seconds)
            print("\n| process | RSS at end, MiB |\n|---|---|")
            for t in targets[1:]:
                print(f"| {t.name} | {rss_mib(t.pids):.1f} |")
            if litellm is not None:
                print(f"\n### moc against {LITELLM} and the {BARE} (fast responder)")
                table_goals(one, load, clients, notes)
            notes += failures(one, load)
            if args.llama:
                llama = llama_targets(http, moc_url, moc.pid)
                notes += [f"llama: {n}" for n in probe(http, llama) if "differ" not in n]
                print("\n### tiny llama.cpp model (max_tokens 8), 1 client")
                table_one(llama, args.seconds, [])
                print("\n### tiny llama.cpp model, under load")
                table_load(llama, [50], args.seconds, [], "direct llama.cpp")
        print("\n" + "\n".join(f"- {n}" for n in notes) if notes else "\nall targets met")
    finally:
        for proc in (moc, other):
            if proc is not None:
                proc.terminate()
                proc.wait()
        for proc in (bare, responder):
            proc.terminate()
            proc.join()


if __name__ == "__main__":
    main()
