"""The simulator against reality: one short trace replayed on a real ``moc serve``.

Four tiny GGUF models reserving 40 MiB each on a 100 MiB host device (moc may
hand out 90 MiB of it: two fit, three do not). A seeded trace (Zipf over the
four, 10 % high priority) is sent at its times with ``x-moc-priority`` and
``max_tokens`` 8; loads are counted from moc's ``moc_model_loads_total``.
Then the simulator replays the same trace with the load, unload and service
times measured on this machine first, and the counts are printed side by side.

    python -m benchmarks.schedsim.replay_real [--seconds 90] [--rate 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

from benchmarks.lease_ops import free_port, wait_port
from benchmarks.schedsim.baselines import lru, min_loads, ollama_like
from benchmarks.schedsim.moc_policy import MocSim
from benchmarks.schedsim.run import quantile
from benchmarks.schedsim.trace import Request, SimModel, Trace, zipf
from moc.models.tiny import TinySpec, write_tiny_gguf

MIB = 1 << 20
NAMES = ("a", "b", "c", "d")
RESERVED_MIB = 40
DEVICE = "100MiB"  # moc hands out 90 % of it: two models fit


def start_moc(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    models = []
    for i, name in enumerate(NAMES):
        path = write_tiny_gguf(folder / f"{name}.gguf", TinySpec(name, ffn=128 * (i + 1), seed=i))
        models.append(f"{{name: {name}, path: '{path}', ctx: 512, memory: {RESERVED_MIB}MiB}}")
    config = folder / "moc.yaml"
    config.write_text(
        f"devices: {{nvml: 'off', host: [{{id: host, size: {DEVICE}}}]}}\n"
        f"log: {{level: warning}}\nmodels: [{', '.join(models)}]\n"
    )
    http_port, grpc_port = free_port(), free_port()
    argv = [sys.executable, "-m", "moc", "serve", "--config", str(config)]
    argv += ["--data-dir", str(folder / "data"), "--http-port", str(http_port)]
    argv += ["--grpc-port", str(grpc_port)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    wait_port(http_port)
    return proc, http_port


def body(model: str) -> dict[str, object]:
    return {"model": model, "prompt": "Once upon a time", "max_tokens": 8}


def loads_counted(http: httpx.Client) -> int:
    total = 0.0
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("moc_model_loads_total{") and 'outcome="loaded"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def load_seconds(http: httpx.Client) -> dict[str, tuple[float, float]]:
    """(sum, count) of moc_model_load_seconds per model: start of a load to serving."""
    found: dict[str, list[float]] = {name: [0.0, 0.0] for name in NAMES}
    for line in http.get("/metrics").text.splitlines():
        for i, suffix in enumerate(("_sum{", "_count{")):
            if line.startswith("moc_model_load_seconds" + suffix):
                name = line.split('model="', 1)[1].split('"', 1)[0]
                found[name][i] = float(line.rsplit(" ", 1)[1])
    return {name: (v[0], v[1]) for name, v in found.items()}


def in_trace_load_s(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """The mean load time per model during the replay (None-free: 0 when it never loaded)."""
    means = {}
    for name in NAMES:
        total, count = (after[name][0] - before[name][0], after[name][1] - before[name][1])
        means[name] = total / count if count else 0.0
    return means


def measure(http: httpx.Client) -> dict[str, tuple[float, float, float]]:
    """(load s, unload s, service s) per model, each loaded alone; all unloaded after."""
    found = {}
    for name in NAMES:
        t0 = time.perf_counter()
        http.post(f"/v1/models/{name}/load", timeout=120).raise_for_status()
        load_s = time.perf_counter() - t0
        service = []
        for _ in range(5):
            t0 = time.perf_counter()
            http.post("/v1/completions", json=body(name)).raise_for_status()
            service.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        http.post(f"/v1/models/{name}/unload", timeout=60).raise_for_status()
        found[name] = (load_s, time.perf_counter() - t0, statistics.median(service))
    return found


async def replay(port: int, trace: Trace) -> list[tuple[Request, int, float]]:
    """Send each request at its time: (request, status, seconds to the full answer)."""
    results: list[tuple[Request, int, float]] = []
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=900, limits=limits
    ) as http:
        t0 = time.perf_counter()

        async def one(request: Request) -> None:
            await asyncio.sleep(max(0.0, t0 + request.arrival - time.perf_counter()))
            sent = time.perf_counter()
            reply = await http.post(
                "/v1/completions",
                json=body(request.model),
                headers={"x-moc-priority": request.priority.label},
            )
            results.append((request, reply.status_code, time.perf_counter() - sent))

        await asyncio.gather(*(one(r) for r in trace.requests))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--rate", type=float, default=3.0, help="requests per second")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_moc(Path(tmp))
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                timings = measure(http)
                catalog = tuple(
                    SimModel(name, RESERVED_MIB * MIB, load_s, unload_s, 1)
                    for name, (load_s, unload_s, _) in timings.items()
                )
                trace = zipf(
                    args.seed,
                    rate=args.rate,
                    duration_s=args.seconds,
                    high_share=0.10,
                    name="real",
                    catalog=catalog,
                    fits=2,
                )
                before, seconds_before = loads_counted(http), load_seconds(http)
                t0 = time.perf_counter()
                real = asyncio.run(replay(port, trace))
                wall = time.perf_counter() - t0
                real_loads = loads_counted(http) - before
                in_trace = in_trace_load_s(seconds_before, load_seconds(http))
        finally:
            proc.terminate()
            proc.wait(60)
    report(args, trace, timings, in_trace, real, real_loads, wall)


def report(
    args: argparse.Namespace,
    trace: Trace,
    timings: dict[str, tuple[float, float, float]],
    in_trace: dict[str, float],
    real: list[tuple[Request, int, float]],
    real_loads: int,
    wall: float,
) -> None:
    service = {name: s for name, (_, _, s) in timings.items()}
    simulated = replace(
        trace, requests=tuple(replace(r, service_s=service[r.model]) for r in trace.requests)
    )
    results = [MocSim(simulated).run(), ollama_like(simulated), lru(simulated)]
    # the same, with each model's mean load time as moc measured it during the
    # replay (start of the load to serving: it includes waits for victims)
    slow = replace(
        simulated,
        models=tuple(replace(m, load_s=in_trace[m.name] or m.load_s) for m in simulated.models),
    )
    results.append(MocSim(slow, name="moc, in-replay load times").run())
    ok = [s for _, status, s in real if status == 200]
    others = sorted({status for _, status, _ in real if status != 200})
    print(f"\nreplay_real, seed {args.seed}: {platform.node()}, python {platform.python_version()}")
    print(
        f"{len(trace.requests)} requests, {trace.about} (the service times measured below "
        f"replace it); 4 × {RESERVED_MIB} MiB on a {DEVICE} device (2 fit); replayed in "
        f"{wall:.1f} s\n"
    )
    print(
        "| model | load s (alone, client) | load s (mean during replay, moc) | unload s "
        "| service s (median) |"
    )
    print("|---|---|---|---|---|")
    for name, (load_s, unload_s, svc) in timings.items():
        print(f"| {name} | {load_s:.3f} | {in_trace[name]:.3f} | {unload_s:.3f} | {svc:.3f} |")
    print()
    print("| run | loads | answered 200 | other answers | arrival to answer p50 / p95 s |")
    print("|---|---|---|---|---|")
    print(
        f"| real moc serve | {real_loads} | {len(ok)} | {len(real) - len(ok)} {others or ''}| "
        f"{quantile(ok, 0.5):.3f} / {quantile(ok, 0.95):.3f} |"
    )
    for r in results:
        print(
            f"| simulated {r.policy} | {r.loads} | {r.served} | {r.answered - r.served} | "
            f"{quantile(r.answer_s, 0.5):.3f} / {quantile(r.answer_s, 0.95):.3f} |"
        )
    print(f"| MIN over arrival order | {min_loads([q.model for q in trace.requests], 2)} | | | |")


if __name__ == "__main__":
    main()
