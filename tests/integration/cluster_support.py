"""Helpers for the cluster tests: a real ``redis-server`` on a free port, and
moc nodes (each a ``moc serve`` with its own data dir and host device) that
join the cluster through it."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MocProcess, free_port

SECRET = "cluster-secret-for-the-tests-0123456789abcdef"
HEARTBEAT_S = 0.2
TTL_S = 1.5


def redis_server_or_skip() -> str:
    """The ``redis-server`` binary; the test module is skipped, loudly, without it."""
    found = shutil.which("redis-server")
    if found is None:
        pytest.skip(
            "CLUSTER TESTS SKIPPED: redis-server is not installed (apt-get install redis-server; "
            ".ci/run installs it)"
        )
    return found


class RedisServer:
    """``redis-server`` in a child process: no persistence, loopback only."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.binary = redis_server_or_skip()
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}:\n{self.log()}"
                )
            if self.ping():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer PING in {timeout}s:\n{self.log()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: Redis gone at once, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def node_config(
    name: str,
    redis_url: str,
    models: list[dict[str, Any]],
    *,
    size: str = "256MiB",
    **sections: Any,
) -> dict[str, Any]:
    """A node's config: its own host device (two daemons may not claim one id),
    short heartbeats and TTLs; ``sections`` are more config sections."""
    cluster = {
        "redis": redis_url,
        "node": name,
        "secret": SECRET,
        "heartbeat_s": HEARTBEAT_S,
        "ttl_s": TTL_S,
        **sections.pop("cluster", {}),
    }
    return {
        "devices": {
            "nvml": "off",
            "host": [{"id": f"host-{name}", "size": size}],
            "poll_interval_s": 0.2,
        },
        "models": models,
        "runtimes": {"restart_backoff_s": 0.2},
        "cluster": cluster,
        **sections,
    }


class Node(MocProcess):
    """One moc of the cluster: ``name`` is its node name; ``headers`` go with
    the helpers' own requests (an admin key where auth is on)."""

    def __init__(
        self,
        folder: Path,
        name: str,
        redis_url: str,
        models: list[dict[str, Any]],
        env: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(folder / name, node_config(name, redis_url, models, **kw), env)
        self.name = name
        self.headers = dict(headers or {})

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers=self.headers, timeout=timeout, verify=self.verify
        )


def start_all(nodes: list[Node]) -> list[Node]:
    """Start the nodes side by side (a start is mostly waiting), then wait until
    each sees all of them."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda n: n.start(timeout=60), nodes))
    names = {n.name for n in nodes}
    for node in nodes:
        wait_for_view(node, lambda found, want=names: members(found) >= want)
    return nodes


def stop_all(nodes: list[Node]) -> None:
    """Stop every node that runs, side by side; each must stop cleanly."""
    with ThreadPoolExecutor(max(1, len(nodes))) as pool:
        codes = list(pool.map(lambda n: n.stop(), nodes))
    for node, code in zip(nodes, codes, strict=True):
        assert code in (0, -signal.SIGKILL), f"{node.name} stopped with {code}:\n{node.log()}"


def view(node: Node) -> dict[str, Any]:
    answer = httpx.get(
        f"{node.url}/v1/cluster", timeout=5, headers=node.headers, verify=node.verify
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def members(found: dict[str, Any]) -> set[str]:
    return {n["name"] for n in found["nodes"]}


def model_state(found: dict[str, Any], node: str, model: str) -> str | None:
    for n in found["nodes"]:
        if n["name"] == node:
            for m in n["models"]:
                if m["name"] == model:
                    return str(m["state"])
    return None


def wait_for_view(node: Node, check: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Poll ``/v1/cluster`` on ``node`` until ``check(view)``; the view."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while True:
        try:
            last = view(node)
            if check(last):
                return last
        except (httpx.HTTPError, AssertionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(
                f"cluster view of {node.url} not as expected in {timeout}s: {last}"
            )
        time.sleep(0.05)
