"""A key's limits counted across real ``moc serve`` nodes through a real
``redis-server``: tokens per minute, requests in flight (a node killed, or
restarted under its name, leaves none behind), device byte-seconds per day
through leases on several nodes, and each node counting alone while Redis is
down.

The caller is a JWT subject: one caller on every node, with the same limits.
Each test's cluster gets a Redis database of its own.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import psutil
import pytest
import redis

from tests.integration.cluster_support import (
    Node,
    RedisServer,
    members,
    start_all,
    view,
    wait_for_view,
)
from tests.integration.support import chat, spec, wait_for

ADMIN = "admin-secret-for-the-cluster-tests-0123456789"
JWT_SECRET = "a-shared-hs256-secret-for-every-node-0123456789"
MIB = 1 << 20

pytestmark = pytest.mark.timeout(120)


def caller(limits: dict[str, int]) -> tuple[dict[str, Any], dict[str, str]]:
    """The auth section every node shares (its JWT subjects held to
    ``limits``), and a subject's headers."""
    auth = {"enabled": True, "jwt": {"secret": JWT_SECRET, "limits": limits}}
    claims = {"sub": "svc", "role": "user", "exp": int(time.time()) + 600}
    return auth, {"authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


def cluster(
    folder: Path, db: str, auth: dict[str, Any], models: list[dict[str, Any]], **per_node: Any
) -> list[Node]:
    """Three nodes, n1 to n3; ``per_node``: a node's own extra sections."""
    admin = {"authorization": f"Bearer {ADMIN}"}
    return [
        Node(folder, name, db, models, env={"MOC_ADMIN_KEY": ADMIN}, headers=admin, auth=auth,
             **per_node.get(name, {}))
        for name in ("n1", "n2", "n3")
    ]  # fmt: skip


def load(node: Node, model: str) -> int:
    """Load ``model`` on ``node``; its runtime's pid."""
    with node.client() as http:
        answer = http.post(f"/v1/models/{model}/load")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["pid"])


def ask(node: Node, headers: dict[str, str], **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{node.url}/v1/chat/completions", json=chat("a", **extra), headers=headers, timeout=60
    )


# --- tokens per minute ---------------------------------------------------------------
def test_tokens_per_minute_are_counted_across_the_nodes(
    tmp_path: Path, fresh_db: str, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    """600 tokens a minute, each request about 110 (estimated at about 70,
    settled on what it used): three nodes that each counted alone would admit
    all fifteen, five each; together they admit what one bucket holds."""
    auth, headers = caller({"tokens_per_minute": 600})
    nodes += cluster(tmp_path, fresh_db, auth, [spec(tiny_models, "a")])
    start_all(nodes)
    for node in nodes:
        load(node, "a")  # each serves its own requests: nothing is forwarded

    answers = [ask(nodes[i % 3], headers, max_tokens=60, ignore_eos=True) for i in range(15)]
    served = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(served) + len(refused) == 15, [a.text for a in answers]
    assert {a.headers["x-moc-node"] for a in served} == {"n1", "n2", "n3"}
    used = sum(a.json()["usage"]["total_tokens"] for a in served)
    each = used / len(served)
    assert 5 * each <= 600, each  # one node alone would admit all five of its own
    assert used <= 600 + each, used  # a minute's worth, with a little refill
    assert 3 <= len(served) <= 600 / each + 1, [a.status_code for a in answers]
    assert answers[: len(served)] == served  # none refused before the bucket ran dry
    error = refused[-1].json()["error"]
    assert (error["code"], error["details"]["field"]) == ("rate_limited", "tokens_per_minute")
    # The last node asked had taken at most a third of it itself.
    assert "across the cluster" in error["message"]
    assert 0 < float(refused[-1].headers["retry-after"]) <= 60

    with redis.Redis.from_url(fresh_db) as db:
        level = db.hget("moc:tokens:jwt:svc", "level")
    assert level is not None
    assert float(level) < 100  # what the answers used was taken in Redis


# --- requests in flight ------------------------------------------------------------------
class Held:
    """A long streamed answer through ``node``, in flight until the block ends."""

    def __init__(self, node: Node, headers: dict[str, str]) -> None:
        self._node, self._headers = node, headers
        self._started, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = chat("a", stream=True, max_tokens=4000, ignore_eos=True)
        try:
            with httpx.stream(
                "POST", f"{self._node.url}/v1/chat/completions", json=body,
                headers=self._headers, timeout=60,
            ) as answer:  # fmt: skip
                assert answer.status_code == 200, answer.read()
                for _ in answer.iter_raw():
                    self._started.set()
                    if self._done.is_set():
                        return
        except httpx.HTTPError:
            pass

    def __enter__(self) -> Held:
        self._thread.start()
        assert self._started.wait(30), "the held request did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(30)


def refused_in_flight(node: Node, headers: dict[str, str]) -> bool:
    answer = ask(node, headers, max_tokens=1)
    if answer.status_code == 200:
        return False
    assert answer.status_code == 429, answer.text
    error = answer.json()["error"]
    assert error["details"]["field"] == "concurrent_requests", error
    assert "across the cluster" in error["message"]
    return True


def test_requests_in_flight_are_counted_across_the_nodes_and_not_kept_by_a_dead_one(
    tmp_path: Path, fresh_db: str, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    """One request at a time across three nodes: n3, with none of its own in
    flight, is refused while n1 or n2 holds one. A node killed stops holding
    it when its heartbeat lapses (n1: 1.5 s); one restarted under its name
    drops it as it rejoins (n2, whose heartbeat would hold it for 30 s)."""
    auth, headers = caller({"concurrent_requests": 1})
    models = [spec(tiny_models, "a", ctx=4096)]
    nodes += cluster(tmp_path, fresh_db, auth, models, n2={"cluster": {"ttl_s": 30.0}})
    n1, n2, n3 = start_all(nodes)
    runtimes = {node.name: load(node, "a") for node in nodes}
    try:
        with Held(n1, headers):
            assert refused_in_flight(n3, headers)
        wait_for(lambda: not refused_in_flight(n3, headers), timeout=5)

        with Held(n1, headers):
            killed_at = time.monotonic()
            n1.kill9()
            psutil.Process(runtimes["n1"]).kill()
            wait_for(lambda: not refused_in_flight(n3, headers), timeout=10)
        assert time.monotonic() - killed_at < 10

        with Held(n2, headers):
            n2.kill9()
            psutil.Process(runtimes["n2"]).kill()
            killed_at = time.monotonic()
            assert refused_in_flight(n3, headers)  # its heartbeat has not lapsed
            n2.start(timeout=60)
            wait_for_view(n3, lambda found: "n2" in members(found))
            wait_for(lambda: not refused_in_flight(n3, headers), timeout=5)
        assert time.monotonic() - killed_at < 30
        with redis.Redis.from_url(fresh_db) as db:
            busy = db.hkeys("moc:busy:jwt:svc")
        assert not any(field.startswith((b"n1/", b"n2/")) for field in busy), busy
    finally:
        for pid in runtimes.values():
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()


# --- device byte-seconds per day ------------------------------------------------------------
def test_device_byte_seconds_per_day_are_counted_across_the_nodes(
    tmp_path: Path, fresh_db: str, nodes: list[Node]
) -> None:
    """1,000 MiB·s a day: what the key's leases on one node will hold counts
    on every other, whether the lease is asked of its node or through another."""
    auth, headers = caller({"device_byte_seconds_per_day": 1000 * MIB})
    nodes += cluster(tmp_path, fresh_db, auth, [])
    n1, n2, _ = start_all(nodes)

    def lease(entry: Node, mib: int, **more: Any) -> httpx.Response:
        body = {"bytes": mib * MIB, "ttl_s": 100, **more}
        return httpx.post(f"{entry.url}/v1/leases", json=body, headers=headers, timeout=10)

    first = lease(n1, 6)  # 600 MiB·s
    assert first.status_code == 201, first.text
    over = lease(n2, 5)  # n2 holds nothing of it, n1 600: 1,100 would pass it
    assert over.status_code == 429, over.text
    error = over.json()["error"]
    assert error["details"]["field"] == "device_byte_seconds_per_day"
    assert "on other nodes" in error["message"]
    on_n3 = lease(n1, 3, node="n3")  # asked of n1, held on n3: 900
    assert (on_n3.status_code, on_n3.headers["x-moc-node"]) == (201, "n3"), on_n3.text
    assert lease(n2, 2).status_code == 429  # 1,100 again
    renewed = httpx.post(
        f"{n2.url}/v1/leases/{on_n3.json()['id']}/renew", json={"ttl_s": 200}, headers=headers
    )
    assert renewed.status_code == 429, renewed.text  # n3 counts n1's 600 too

    released = httpx.delete(f"{n1.url}/v1/leases/{first.json()['id']}", headers=headers)
    assert released.status_code == 200  # n1 now holds a few seconds' worth of 6 MiB
    second = lease(n2, 5)
    assert second.status_code == 201, second.text
    for done in (on_n3, second):
        lid = done.json()["id"]
        assert httpx.delete(f"{n1.url}/v1/leases/{lid}", headers=headers).status_code == 200


# --- Redis down -------------------------------------------------------------------------------
def test_with_redis_down_each_node_counts_the_key_alone(
    tmp_path: Path, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    own = RedisServer(tmp_path / "redis").start()
    try:
        auth, headers = caller({"requests_per_minute": 4, "concurrent_requests": 2})
        nodes += cluster(tmp_path, own.url(), auth, [spec(tiny_models, "a")])[:2]
        n1, n2 = start_all(nodes)
        assert httpx.get(f"{n1.url}/v1/models", headers=headers).status_code == 200
        own.kill()
        for node in (n1, n2):
            wait_for_view(node, lambda found: found["redis"] == "down", timeout=5)
        # n1 counted one while Redis was up: three more, then its own limit.
        codes = {
            node.name: [
                httpx.get(f"{node.url}/v1/models", headers=headers).status_code for _ in range(5)
            ]
            for node in (n1, n2)
        }
        assert codes == {"n1": [200, 200, 200, 429, 429], "n2": [200, 200, 200, 200, 429]}
        refused = httpx.get(f"{n2.url}/v1/models", headers=headers).json()["error"]
        assert "across the cluster" not in refused["message"]
        assert view(n1)["redis"] == "down"
    finally:
        own.kill()
