"""Three moc nodes, each in a network namespace of its own, joined by a
bridge; Redis on the bridge. Run under ``unshare -rnm`` (a user, network and
mount namespace of its own, no privilege needed), by
``test_cluster_netns.py``:

    unshare -rnm --propagation private python netns_cluster.py WORK MODEL_B

Each node listens on 0.0.0.0 with no ``cluster.advertise``: it must find the
address the others reach it at by itself. What it checks is printed as one
JSON document on the last line; the test asserts on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

BRIDGE = "10.9.0.1"
NODES = {"n1": "10.9.0.2", "n2": "10.9.0.3", "n3": "10.9.0.4"}
PORT = 8008
SECRET = "netns-cluster-secret-0123456789abcdef"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def network() -> None:
    """The bridge in this namespace and a namespace per node on it."""
    sh("mount", "-t", "tmpfs", "none", "/run")
    os.makedirs("/run/netns", exist_ok=True)
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "br0", "type", "bridge")
    sh("ip", "addr", "add", f"{BRIDGE}/24", "dev", "br0")
    sh("ip", "link", "set", "br0", "up")
    for name, address in NODES.items():
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "link", "set", f"v{name}", "master", "br0")
        sh("ip", "link", "set", f"v{name}", "up")
        inside = ("ip", "netns", "exec", name, "ip")
        sh(*inside, "addr", "add", f"{address}/24", "dev", "eth0")
        sh(*inside, "link", "set", "eth0", "up")
        sh(*inside, "link", "set", "lo", "up")


def start_node(work: Path, name: str, models: list[dict[str, Any]]) -> subprocess.Popen[bytes]:
    config = {
        "server": {"host": "0.0.0.0", "allow_unauthenticated": True},
        "devices": {"nvml": "off", "host": [{"id": f"host-{name}", "size": "256MiB"}],
                    "claim_dir": str(work / "claims" / name)},
        "models": models,
        "cluster": {"redis": f"redis://{BRIDGE}:6379/0", "node": name, "secret": SECRET,
                    "heartbeat_s": 0.2, "ttl_s": 1.5},
    }  # fmt: skip
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(work / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(
        ["ip", "netns", "exec", name, sys.executable, "-m", "moc", "serve", "--config", str(path),
         "--data-dir", str(work / name), "--http-port", str(PORT), "--grpc-port", "0"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def url(name: str) -> str:
    return f"http://{NODES[name]}:{PORT}"


def wait(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"not in time: {check.__doc__ or check}")


def members(name: str) -> dict[str, str]:
    nodes = httpx.get(f"{url(name)}/v1/cluster", timeout=5).json()["nodes"]
    return {n["name"]: n["url"] for n in nodes}


def main() -> None:
    work, model_b = Path(sys.argv[1]), sys.argv[2]
    network()
    redis = subprocess.Popen(
        ["redis-server", "--bind", BRIDGE, "--port", "6379", "--protected-mode", "no",
         "--save", "", "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    procs = {
        name: start_node(
            work, name, [{"name": "b", "path": model_b, "ctx": 512}] if name == "n2" else []
        )
        for name in NODES
    }
    found: dict[str, Any] = {}
    try:
        wait(lambda: all(len(members(n)) == 3 for n in NODES))
        found["urls"] = members("n1")
        httpx.post(f"{url('n2')}/v1/models/b/load", timeout=120).raise_for_status()
        wait(lambda: any(
            m["name"] == "b" and m["state"] == "ready"
            for n in httpx.get(f"{url('n1')}/v1/cluster", timeout=5).json()["nodes"]
            for m in n["models"]
        ))  # fmt: skip
        body = {"model": "b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        answer = httpx.post(f"{url('n1')}/v1/chat/completions", json=body, timeout=60)
        found["chat"] = [answer.status_code, answer.headers.get("x-moc-node")]
        procs["n3"].send_signal(signal.SIGKILL)
        procs["n3"].wait(10)
        t0 = time.monotonic()
        wait(lambda: set(members("n1")) == {"n1", "n2"} and set(members("n2")) == {"n1", "n2"})
        found["n3_out_after_s"] = round(time.monotonic() - t0, 2)
    finally:
        for proc in (*procs.values(), redis):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
