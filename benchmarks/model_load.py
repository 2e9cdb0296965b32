"""Cold-load overhead: what moc adds to starting a llama.cpp runtime.

Side by side, alternating, in one run:

- **bare**: start the runtime with exactly the argv moc uses and poll its
  ``/health`` every millisecond until it answers 200 — the runtime's own
  start-to-ready, the best any supervisor could do;
- **moc**: ``POST /v1/models/{name}/load`` on a running ``moc serve`` until
  its answer arrives (read the file's facts, place, reserve, start, wait for
  health, measure, answer), then ``/unload``.

Two figures for what moc adds (target: ≤ 20 ms):

- per load, the client's time minus the runtime's own spawn-to-ready as moc
  saw it (``runtime_start_s`` in the answer): moc's work around the runtime
  (request, placement, reservation, spawn, measurement, answer), free of the
  runtime's own variation;
- the difference of the medians of the two paths, which also catches any
  way moc slows the runtime itself, but carries the runtime's noise
  (±20 ms on a 2-core machine).

It also prints moc's own CPU time (its process, not the runtime's) per load
and unload: what a model swap costs the requests moc serves meanwhile.

    python benchmarks/model_load.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lease_ops import free_port, start_moc

from moc.backends.llamacpp import launch, resolve_server
from moc.config import LlamaCppConfig
from moc.devices.probe import DeviceInfo
from moc.models.spec import ModelSpec
from moc.models.tiny import TinySpec, write_tiny_gguf


async def bare_once(argv: tuple[str, ...], env: dict[str, str], port: int) -> float:
    async with httpx.AsyncClient() as http:
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
        try:
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        return time.perf_counter() - t0
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.001)
        finally:
            proc.terminate()
            await proc.wait()


def cpu_s(pid: int) -> float:
    """The process's own CPU seconds (not its children's: the runtimes)."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def moc_once(http: httpx.Client, name: str) -> tuple[float, float]:
    """(client's time for the load, moc's share of it)."""
    t0 = time.perf_counter()
    response = http.post(f"/v1/models/{name}/load", timeout=60)
    took = time.perf_counter() - t0
    response.raise_for_status()
    http.post(f"/v1/models/{name}/unload", timeout=60).raise_for_status()
    return took, took - float(response.json()["runtime_start_s"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="moc-bench-load-"))
    model = write_tiny_gguf(tmp / "bench.gguf", TinySpec("bench"))
    spec = ModelSpec(name="bench", path=model, ctx=512)
    device = DeviceInfo(id="host", kind="host", name="host memory", total=4 << 30)
    server = resolve_server("xllamacpp")

    moc, port, _ = start_moc(tmp, f"models: [{{name: bench, path: '{model}', ctx: 512}}]\n")
    bare: list[float] = []
    via_moc: list[float] = []
    share: list[float] = []
    cpu: list[float] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            moc_once(http, "bench")  # warm: the file's facts are read once
            for _ in range(args.rounds):
                run = launch(spec, device, free_port(), LlamaCppConfig(), server)
                bare.append(asyncio.run(bare_once(run.argv, dict(run.env), run.port)))
                c0 = cpu_s(moc.pid)
                took, own = moc_once(http, "bench")
                cpu.append(cpu_s(moc.pid) - c0)
                via_moc.append(took)
                share.append(own)
    finally:
        moc.terminate()
        moc.wait()

    def ms(values: list[float], q: float) -> float:
        return sorted(values)[round(q * (len(values) - 1))] * 1000

    print(f"\nmachine: {os.cpu_count()} CPUs; {args.rounds} rounds, alternating\n")
    print("| path | p50 ms | p90 ms | min ms |")
    print("|---|---|---|---|")
    for label, values in (("bare runtime, spawn → /health 200", bare), ("moc load", via_moc)):
        p50, p90, low = ms(values, 0.5), ms(values, 0.9), min(values) * 1000
        print(f"| {label} | {p50:.1f} | {p90:.1f} | {low:.1f} |")
    overhead = (statistics.median(via_moc) - statistics.median(bare)) * 1000
    print(f"| moc's share of each load | {ms(share, 0.5):.1f} | {ms(share, 0.9):.1f} | ", end="")
    print(f"{min(share) * 1000:.1f} |")
    print(f"\ndifference of medians (moc load − bare runtime): {overhead:.1f} ms")
    print(f"moc's own CPU per load and unload: {statistics.median(cpu) * 1000:.1f} ms (median)")


if __name__ == "__main__":
    main()
