"""What the cluster costs, side by side in one run.

1. The extra hop: two nodes and one ``redis-server``; the same chat request
   (a tiny llama.cpp model held by node 2) sent to node 2 itself and to
   node 1, which forwards it. One client, alternating runs; p50/p99 of each
   and the difference.
2. A lease on another node: ``POST /v1/leases`` with ``"node"`` through node 1
   against the same on node 2 itself, with the release; p50/p99.
3. The placement decision alone (no I/O): ``route()`` over 10 nodes of 100
   models each, for a cold model; microseconds per decision.
4. Redis operations: ``redis-cli INFO commandstats`` over 5 s with no
   requests (the heartbeats alone), then before and after the runs; what
   the runs added, divided by the requests sent.

    python benchmarks/cluster.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_S = 0.5
IDLE_S = 5.0
sys.path.insert(0, str(ROOT / "benchmarks"))
from lease_ops import free_port, pct, wait_port  # noqa: E402

from moc.cluster.model import NodeDevice, NodeInfo, NodeModel  # noqa: E402
from moc.cluster.route import route  # noqa: E402
from moc.models.tiny import TinySpec, write_tiny_gguf  # noqa: E402

SECRET = "bench-cluster-secret-0123456789abcdef"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}


def start_redis(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, proc)
    return proc


def start_node(tmp: Path, name: str, redis_port: int, model: Path | None) -> tuple[Any, str]:
    port = free_port()
    models = f"[{{name: m, path: {model}, ctx: 512}}]" if model else "[]"
    config = tmp / f"{name}.yaml"
    config.write_text(
        f"devices: {{nvml: 'off', host: [{{id: {name}, size: 2GiB}}], claim_dir: {tmp}/claims}}\n"
        f"models: {models}\nruntimes: {{demo_models: false}}\nlog: {{level: warning}}\n"
        f"cluster: {{redis: 'redis://127.0.0.1:{redis_port}', node: {name}, "
        f"secret: '{SECRET}', heartbeat_s: {HEARTBEAT_S}, ttl_s: 3}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "moc", "serve", "--config", str(config), "--data-dir",
         str(tmp / name), "--http-port", str(port), "--grpc-port", "0"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, proc)
    return proc, f"http://127.0.0.1:{port}"


def timed(http: httpx.Client, call: Any, seconds: float) -> list[float]:
    took = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        call(http)
        took.append(time.perf_counter() - t0)
    return took


def chat(url: str) -> Any:
    def call(http: httpx.Client) -> None:
        answer = http.post(f"{url}/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200, answer.text

    return call


def lease_cycle(url: str, node: str) -> Any:
    def call(http: httpx.Client) -> None:
        made = http.post(f"{url}/v1/leases", json={"bytes": 1 << 20, "ttl_s": 30, "node": node})
        assert made.status_code == 201, made.text
        gone = http.delete(f"{url}/v1/leases/{made.json()['id']}")
        assert gone.status_code == 200, gone.text

    return call


def redis_calls(port: int) -> int:
    info = subprocess.run(
        ["redis-cli", "-p", str(port), "INFO", "commandstats"], capture_output=True, text=True
    ).stdout
    return sum(
        int(line.split("calls=")[1].split(",")[0]) for line in info.splitlines() if "calls=" in line
    )


def placement_us(nodes: int, models: int, decisions: int) -> float:
    def node(i: int) -> NodeInfo:
        return NodeInfo(
            name=f"n{i:02d}",
            url=f"http://10.0.0.{i}:8008",
            at=0.0,
            devices=(NodeDevice("gpu0", "gpu", 80 << 30, 10 << 30, 70 << 30),),
            models=tuple(
                NodeModel(f"model-{j:03d}", "stopped", (1 + j % 20) << 30, False)
                for j in range(models)
            ),
            queued=i % 7,
        )

    fleet = [node(i) for i in range(nodes)]
    here, others = fleet[0], fleet[1:]
    t0 = time.perf_counter()
    for k in range(decisions):
        route(f"model-{k % models:03d}", here, others)
    return (time.perf_counter() - t0) / decisions * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"placement decision, 10 nodes x 100 models: {placement_us(10, 100, 20000):.1f} us")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = write_tiny_gguf(tmp / "m.gguf", TinySpec("m", ffn=128, seed=0))
        redis_port = free_port()
        redis = start_redis(redis_port)
        n1, url1 = start_node(tmp, "n1", redis_port, None)
        n2, url2 = start_node(tmp, "n2", redis_port, model)
        try:
            with httpx.Client(timeout=60) as http:
                http.post(f"{url2}/v1/models/m/load", timeout=120).raise_for_status()
                time.sleep(2)  # n1 sees m ready on n2
                cases = {
                    "chat, local (n2 itself)": chat(url2),
                    "chat, forwarded (n1 -> n2)": chat(url1),
                    "lease, local (n2 itself)": lease_cycle(url2, "n2"),
                    "lease, through n1 to n2": lease_cycle(url1, "n2"),
                }
                for call in cases.values():
                    timed(http, call, 0.5)  # warm
                idle_before, idle_t0 = redis_calls(redis_port), time.monotonic()
                time.sleep(IDLE_S)  # what the heartbeats cost alone
                idle_rate = (redis_calls(redis_port) - idle_before) / (time.monotonic() - idle_t0)
                found: dict[str, list[list[float]]] = {k: [] for k in cases}
                sent = 0
                before = redis_calls(redis_port)
                t0 = time.monotonic()
                for _ in range(args.rounds):
                    for name, call in cases.items():
                        took = timed(http, call, args.seconds)
                        found[name].append(took)
                        sent += len(took)
                spent = time.monotonic() - t0
                calls = redis_calls(redis_port) - before
        finally:
            for proc in (n1, n2, redis):
                proc.terminate()
                proc.wait()
    print(f"\none client, {args.rounds} alternating rounds of {args.seconds:g}s, medians")
    print(f"{'case':30} {'p50 ms':>8} {'p99 ms':>8}")
    p50 = {}
    for name, runs in found.items():
        p50[name] = statistics.median(pct(r, 0.5) for r in runs)
        p99 = statistics.median(pct(r, 0.99) for r in runs)
        print(f"{name:30} {p50[name]:8.3f} {p99:8.3f}")
    hop = p50["chat, forwarded (n1 -> n2)"] - p50["chat, local (n2 itself)"]
    lease_hop = p50["lease, through n1 to n2"] - p50["lease, local (n2 itself)"]
    print(f"added by the hop, p50: chat {hop:.3f} ms, lease cycle {lease_hop:.3f} ms")
    beats = idle_rate * spent
    print(
        f"redis commands: {idle_rate * HEARTBEAT_S / 2:.1f} per node and heartbeat (idle); "
        f"{calls} in {spent:.0f}s for {sent} requests (heartbeats about {beats:.0f} of them): "
        f"{max(0.0, calls - beats) / max(sent, 1):.3f} per request"
    )


if __name__ == "__main__":
    main()
