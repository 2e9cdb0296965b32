"""Lease operations against a running ``moc serve``, over HTTP and gRPC.

Side by side in one run, with the same load generator:

- a trivial asyncio HTTP responder (the machine's ceiling: no parsing, no state);
- moc over HTTP: acquire (POST /v1/leases), renew (POST …/renew), release (DELETE);
- moc over gRPC: AcquireGpuLease, RenewGpuLease, ReleaseGpuLease.

For one client it reports p50/p99 per operation; for 1, 16 and 64 concurrent
clients, operations per second (each client loops acquire → renew → release).
The load generator runs in its own process (aiohttp or grpc.aio, on uvloop).

    python benchmarks/lease_ops.py [--seconds 5] [--json out.json]
        [--compare-with /path/to/other/src] [--rounds 3]

``--compare-with`` adds a second moc, run from another source tree (e.g. a
checkout of main), measured over HTTP in turns with this tree's: ``--rounds``
short runs each, alternating, so a busy moment on a shared machine weighs on
both alike; each figure is the median of its rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from loadgen import serve_constant  # noqa: E402

OPS = ("acquire", "renew", "release")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


# --- the ceiling ---------------------------------------------------------------
def serve_trivial(port: int) -> None:
    serve_constant(port, b"200 OK", b'{"id":"0123456789abcdef","fencing_token":1}')


def serve_trivial_grpc(port: int) -> None:
    """modelops.ModelOps answering every call with a constant: the ceiling of
    Python gRPC on this machine, to compare moc's gRPC figures with."""
    import grpc
    import uvloop

    sys.path.insert(0, str(ROOT / "src"))
    from moc.gateway.grpc import modelops_pb2 as pb
    from moc.gateway.grpc import modelops_pb2_grpc as pb_grpc

    reply = pb.GpuLeaseReply(granted=True, lease_id="0123456789abcdef", fencing_token=1)

    class Trivial(pb_grpc.ModelOpsServicer):
        async def AcquireGpuLease(self, request: Any, context: Any) -> Any:
            return reply

        async def RenewGpuLease(self, request: Any, context: Any) -> Any:
            return reply

        async def ReleaseGpuLease(self, request: Any, context: Any) -> Any:
            return pb.GpuLeaseReleaseAck(ok=True)

    async def main() -> None:
        server = grpc.aio.server()
        pb_grpc.add_ModelOpsServicer_to_server(Trivial(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(main())


# --- load generators -------------------------------------------------------------
async def http_cycles(url: str, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    import aiohttp

    lat: dict[str, list[float]] = {op: [] for op in OPS}
    cycles = 0
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    body = json.dumps({"bytes": 1, "ttl_s": 300, "holder": "bench"}).encode()
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + warmup
        stop = start + seconds

        async def client() -> None:
            nonlocal cycles, errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                async with session.post(f"{url}/v1/leases", data=body, headers=headers) as r:
                    lease = await r.json(content_type=None)
                    ok = r.status < 300
                t1 = time.perf_counter()
                lease_id = lease.get("id", "x")
                async with session.post(f"{url}/v1/leases/{lease_id}/renew") as r:
                    await r.read()
                    ok = ok and r.status < 300
                t2 = time.perf_counter()
                async with session.delete(f"{url}/v1/leases/{lease_id}") as r:
                    await r.read()
                    ok = ok and r.status < 300
                t3 = time.perf_counter()
                if t0 >= start and t3 <= stop:
                    if not ok:
                        errors += 1
                        continue
                    cycles += 1
                    if clients == 1:
                        lat["acquire"].append(t1 - t0)
                        lat["renew"].append(t2 - t1)
                        lat["release"].append(t3 - t2)

        await asyncio.gather(*(client() for _ in range(clients)))
    return {"cycles": cycles, "errors": errors, "seconds": seconds, "lat": lat}


async def grpc_cycles(target: str, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    import grpc

    sys.path.insert(0, str(ROOT / "src"))
    from moc.gateway.grpc import modelops_pb2 as pb
    from moc.gateway.grpc import modelops_pb2_grpc as pb_grpc

    lat: dict[str, list[float]] = {op: [] for op in OPS}
    cycles = 0
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.ModelOpsStub(channel)
        start = time.perf_counter() + warmup
        stop = start + seconds

        async def client() -> None:
            nonlocal cycles, errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                reply = await stub.AcquireGpuLease(
                    pb.GpuLeaseRequest(client="bench", bytes=1, ttl_seconds=300)
                )
                t1 = time.perf_counter()
                await stub.RenewGpuLease(pb.GpuLeaseRenew(lease_id=reply.lease_id))
                t2 = time.perf_counter()
                await stub.ReleaseGpuLease(pb.GpuLeaseRelease(lease_id=reply.lease_id))
                t3 = time.perf_counter()
                if t0 >= start and t3 <= stop:
                    if not reply.granted:
                        errors += 1
                        continue
                    cycles += 1
                    if clients == 1:
                        lat["acquire"].append(t1 - t0)
                        lat["renew"].append(t2 - t1)
                        lat["release"].append(t3 - t2)

        await asyncio.gather(*(client() for _ in range(clients)))
    return {"cycles": cycles, "errors": errors, "seconds": seconds, "lat": lat}


def _child(conn: Any, kind: str, target: str, clients: int, seconds: float) -> None:
    import uvloop

    fn = http_cycles if kind == "http" else grpc_cycles
    conn.send(uvloop.run(fn(target, clients, seconds, 1.0)))


def measure(kind: str, target: str, clients: int, seconds: float) -> dict[str, Any]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_child, args=(child, kind, target, clients, seconds)
    )
    proc.start()
    result: dict[str, Any] = parent.recv()
    proc.join()
    return result


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000


def start_moc(
    tmp: Path, extra_config: str = "", src: Path | None = None, device: str = "host"
) -> tuple[subprocess.Popen[bytes], int, int]:
    """``moc serve`` with one 4 GiB host device and quiet logs, plus
    ``extra_config``; from ``src`` (a tree's ``src`` folder) when given. Two
    mocs side by side need host devices of their own (``device``): moc
    refuses to share one with another daemon."""
    http_port, grpc_port = free_port(), free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "moc.yaml"
    config.write_text(
        f"devices: {{nvml: 'off', host: [{{id: {device}, size: 4GiB}}]}}\nlog: {{level: warning}}\n"
        + extra_config
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moc",
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(tmp / "data"),
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
        ],
        stdin=subprocess.DEVNULL,
        env=None if src is None else {**os.environ, "PYTHONPATH": str(src)},
    )
    wait_port(http_port, proc)
    wait_port(grpc_port, proc)
    return proc, http_port, grpc_port


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def compare(other_src: Path, seconds: float, rounds: int) -> dict[str, Any]:
    """This tree's moc and one from ``other_src`` over HTTP, in turns."""
    tmp = Path(tempfile.mkdtemp(prefix="moc-bench-cmp-"))
    here, here_port, _ = start_moc(tmp / "here", src=ROOT / "src", device="here")
    there, there_port, _ = start_moc(tmp / "there", src=other_src, device="there")
    trees = {
        f"this tree ({ROOT})": (f"http://127.0.0.1:{here_port}", here.pid),
        f"other tree ({other_src.parent})": (f"http://127.0.0.1:{there_port}", there.pid),
    }
    runs: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    try:
        for _ in range(rounds):
            for clients in (1, 16):
                for name, (url, pid) in trees.items():
                    before = cpu_seconds(pid)
                    r = measure("http", url, clients, seconds)
                    ops = 3 * r["cycles"]
                    got = runs[name]
                    got.setdefault(f"ops_per_s_{clients}", []).append(ops / r["seconds"])
                    got.setdefault(f"cpu_ms_per_op_{clients}", []).append(
                        1000 * (cpu_seconds(pid) - before) / ops if ops else float("nan")
                    )
                    got.setdefault("errors", []).append(r["errors"])
                    if clients == 1:
                        for op, values in r["lat"].items():
                            got.setdefault(f"{op}_p50", []).append(pct(values, 0.5))
                            got.setdefault(f"{op}_p99", []).append(pct(values, 0.99))
            print("done: a round of the comparison", file=sys.stderr, flush=True)
    finally:
        for proc in (here, there):
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    return {
        name: {k: (sum(v) if k == "errors" else median(v)) for k, v in got.items()}
        for name, got in runs.items()
    }


def print_comparison(found: dict[str, Any], seconds: float, rounds: int) -> None:
    print(f"\ncomparison over HTTP: {rounds} alternating rounds of {seconds:g}s, medians\n")
    print("| tree | op | p50 ms (1 client) | p99 ms (1 client) |")
    print("|---|---|---|---|")
    for name, row in found.items():
        for op in OPS:
            print(f"| {name} | {op} | {row[f'{op}_p50']:.3f} | {row[f'{op}_p99']:.3f} |")
    print("\n| tree | ops/s, 1 client | ops/s, 16 | server CPU ms/op at 16 | errors |")
    print("|---|---|---|---|---|")
    for name, row in found.items():
        print(
            f"| {name} | {row['ops_per_s_1']:.0f} | {row['ops_per_s_16']:.0f} | "
            f"{row['cpu_ms_per_op_16']:.3f} | {row['errors']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="another tree's src folder: run its moc in turns with this one, over HTTP",
    )
    parser.add_argument("--rounds", type=int, default=3, help="turns each, with --compare-with")
    args = parser.parse_args()

    trivial_port, trivial_grpc_port = free_port(), free_port()
    trivial = mp.get_context("spawn").Process(
        target=serve_trivial, args=(trivial_port,), daemon=True
    )
    trivial_grpc = mp.get_context("spawn").Process(
        target=serve_trivial_grpc, args=(trivial_grpc_port,), daemon=True
    )
    trivial.start()
    trivial_grpc.start()
    wait_port(trivial_port)
    wait_port(trivial_grpc_port)
    tmp = Path(tempfile.mkdtemp(prefix="moc-bench-"))
    moc, http_port, grpc_port = start_moc(tmp)
    targets = {
        "trivial responder (HTTP)": ("http", f"http://127.0.0.1:{trivial_port}", trivial.pid),
        "moc HTTP": ("http", f"http://127.0.0.1:{http_port}", moc.pid),
        "trivial responder (gRPC)": ("grpc", f"127.0.0.1:{trivial_grpc_port}", trivial_grpc.pid),
        "moc gRPC": ("grpc", f"127.0.0.1:{grpc_port}", moc.pid),
    }
    results: dict[str, Any] = {}
    try:
        for name, (kind, target, pid) in targets.items():
            row: dict[str, Any] = {}
            for clients in (1, 16, 64):
                before = cpu_seconds(pid) if pid else 0.0
                r = measure(kind, target, clients, args.seconds)
                used = (cpu_seconds(pid) - before) if pid else 0.0
                ops = 3 * r["cycles"]
                row[clients] = {
                    "ops_per_s": ops / r["seconds"],
                    "errors": r["errors"],
                    "server_cpu_ms_per_op": 1000 * used / ops if ops else float("nan"),
                }
                if clients == 1:
                    row["latency_ms"] = {
                        op: {"p50": pct(v, 0.5), "p99": pct(v, 0.99)} for op, v in r["lat"].items()
                    }
            results[name] = row
            print(f"done: {name}", file=sys.stderr, flush=True)
    finally:
        moc.send_signal(signal.SIGTERM)
        moc.wait(20)
        trivial.terminate()
        trivial_grpc.terminate()

    print(f"\nmachine: {os.cpu_count()} CPUs, {sys.platform}; {args.seconds:g}s per point\n")
    print("| target | op | p50 ms (1 client) | p99 ms (1 client) |")
    print("|---|---|---|---|")
    for name, row in results.items():
        for op in OPS:
            lat = row["latency_ms"][op]
            print(f"| {name} | {op} | {lat['p50']:.3f} | {lat['p99']:.3f} |")
    print(
        "\n| target | ops/s, 1 client | ops/s, 16 | ops/s, 64 | server CPU ms/op at 64 | errors |"
    )
    print("|---|---|---|---|---|---|")
    for name, row in results.items():
        errors = sum(row[c]["errors"] for c in (1, 16, 64))
        print(
            f"| {name} | {row[1]['ops_per_s']:.0f} | {row[16]['ops_per_s']:.0f} | "
            f"{row[64]['ops_per_s']:.0f} | {row[64]['server_cpu_ms_per_op']:.3f} | {errors} |"
        )
    if args.compare_with is not None:
        found = compare(args.compare_with.resolve(), args.seconds, args.rounds)
        print_comparison(found, args.seconds, args.rounds)
        results["comparison"] = found
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
