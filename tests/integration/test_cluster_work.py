"""Work across a cluster, end to end with real nodes and a real Redis: async
jobs held by the node that serves their model, learning jobs run by a node
that has what they name, both looked up, followed, listed and cancelled
through any node; goals and API keys the same on every node.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from tests.integration.cluster_support import (
    Node,
    RedisServer,
    redis_server_or_skip,
    start_all,
    stop_all,
    wait_for_view,
)
from tests.integration.support import spec
from tests.integration.test_auth_clients import moc_cli
from tests.integration.test_learning import LEARNING

ADMIN = "admin-secret-for-the-cluster-work-tests-0123"
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN}"}

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]
) -> Iterator[list[Node]]:
    """n1 knows model a, n2 model b; auth on, the same admin key on both."""
    redis_server_or_skip()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    url = server.url(0)
    redis.Redis.from_url(url).flushdb()
    folder = tmp_path_factory.mktemp("pair")
    common: dict[str, Any] = {
        "env": {"MOC_ADMIN_KEY": ADMIN},
        "headers": ADMIN_HEADERS,
        "auth": {"enabled": True},
        "learning": LEARNING,
        "size": "1GiB",
    }
    two = [
        Node(folder, "n1", url, [spec(tiny_models, "a")], **common),
        Node(folder, "n2", url, [spec(tiny_models, "b")], **common),
    ]
    start_all(two)
    yield two
    stop_all(two)
    server.stop()


def until(check: Any, timeout: float = 10.0) -> Any:
    """Poll ``check()`` until it gives something true; that."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_an_async_job_is_held_by_the_node_that_serves_its_model(pair: list[Node]) -> None:
    n1, n2 = pair
    with n1.client() as http:
        made = http.post(
            "/v1/jobs", json={"model": "b", "prompt": "hi", "options": {"max_tokens": 4}}
        )
        assert made.status_code == 202, made.text
        assert made.headers["x-moc-node"] == "n2"
        job_id = made.json()["job_id"]
        assert job_id.startswith("n2.")

        def finished() -> dict[str, Any] | None:
            got = http.get(f"/v1/jobs/{job_id}")
            assert (got.status_code, got.headers["x-moc-node"]) == (200, "n2"), got.text
            doc: dict[str, Any] = got.json()
            return doc if doc["status"] in ("complete", "failed") else None

        done = until(finished, timeout=60)
        assert done is not None
        assert done["status"] == "complete", done
        assert done["model"] == "b"

        # n1's list is the cluster's: n2's job is in it, next to n1's own.
        own = http.post(
            "/v1/jobs", json={"model": "a", "prompt": "hi", "options": {"max_tokens": 4}}
        )
        assert (own.status_code, own.headers["x-moc-node"]) == (202, "n1"), own.text
        listed = http.get("/v1/jobs", params={"limit": 1000})
        assert listed.status_code == 200
        ids = [j["job_id"] for j in listed.json()["data"]]
        assert {job_id, own.json()["job_id"]} <= set(ids)
        assert "x-moc-nodes-missing" not in listed.headers
        created = [j["created_at"] for j in listed.json()["data"]]
        assert created == sorted(created, reverse=True)
        only_one = http.get("/v1/jobs", params={"limit": 1}).json()["data"]
        assert len(only_one) == 1
    # On n2 itself the job is its own.
    with n2.client() as http:
        assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "complete"


def test_a_learning_job_goes_to_a_node_that_has_its_model(pair: list[Node]) -> None:
    n1, n2 = pair
    with n1.client(timeout=120) as http:
        # Only n2 knows b: quantizing it, asked of n1, runs on n2.
        made = http.post(
            "/v1/learning/jobs", json={"kind": "quantize", "model": "b", "params": {"type": "q8_0"}}
        )
        assert made.status_code == 202, made.text
        assert made.headers["x-moc-node"] == "n2"
        job_id = made.json()["id"]
        assert job_id.startswith("n2.")
        # Followed through n1: the events stream comes from n2 until the end.
        with http.stream("GET", f"/v1/learning/jobs/{job_id}/events") as events:
            assert events.status_code == 200
            assert events.headers["x-moc-node"] == "n2"
            text = b"".join(events.iter_raw()).decode()
        assert "event: status" in text
        assert '"status":"complete"' in text.replace(" ", ""), text[-2000:]
        got = http.get(f"/v1/learning/jobs/{job_id}")
        assert (got.status_code, got.json()["status"]) == (200, "complete")
        assert job_id in [j["id"] for j in http.get("/v1/learning/jobs").json()["jobs"]]

        # A model no node knows: refused by n1, naming the field.
        unknown = http.post(
            "/v1/learning/jobs",
            json={"kind": "quantize", "model": "zzz", "params": {"type": "q8_0"}},
        )
        assert (unknown.status_code, unknown.headers["x-moc-node"]) == (404, "n1")
        assert unknown.json()["error"]["details"]["field"] == "model"
        # A node that is not in the cluster, asked for by name.
        nowhere = http.post(
            "/v1/learning/jobs",
            json={"kind": "quantize", "model": "a", "node": "n9", "params": {"type": "q8_0"}},
        )
        assert nowhere.status_code == 404, nowhere.text
        assert "n9" in nowhere.json()["error"]["message"]
        # Asked for n2 by name, a job n1 could run goes there, and is
        # cancelled through n1.
        there = http.post(
            "/v1/learning/jobs",
            json={"kind": "quantize", "model": "b", "node": "n2", "goal": None,
                  "priority": 1, "params": {"type": "q8_0"}},
        )  # fmt: skip
        assert (there.status_code, there.headers["x-moc-node"]) == (202, "n2"), there.text
        cancelled = http.delete(f"/v1/learning/jobs/{there.json()['id']}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.headers["x-moc-node"] == "n2"
        ended = until(
            lambda: (
                http.get(f"/v1/learning/jobs/{there.json()['id']}").json()["status"]
                in ("cancelled", "complete")
            )
        )
        assert ended, http.get(f"/v1/learning/jobs/{there.json()['id']}").text
    with n2.client() as http:
        assert http.get(f"/v1/learning/jobs/{job_id}").json()["status"] == "complete"
    # The CLI names the node the same way, and follows the job through n1.
    done = moc_cli(n1, "quantize", "b", "--node", "n2", "--follow", "--json", env_key=ADMIN)
    assert done.returncode == 0, done.stderr
    followed = json.loads(done.stdout)
    assert (followed["id"].split(".")[0], followed["status"]) == ("n2", "complete")


def test_goals_are_the_same_on_every_node(pair: list[Node]) -> None:
    n1, n2 = pair
    with n1.client() as one, n2.client() as two:
        made = one.post("/v1/goals", json={"name": "support-bot", "weight": 3})
        assert made.status_code == 201, made.text

        def on_n2(status: str) -> bool:
            got = two.get("/v1/goals/support-bot")
            return got.status_code == 200 and got.json()["status"] == status

        assert until(lambda: on_n2("active")), two.get("/v1/goals").text
        assert two.get("/v1/goals/support-bot").json()["weight"] == 3
        paused = two.patch("/v1/goals/support-bot", json={"status": "paused", "weight": 5})
        assert paused.status_code == 200, paused.text
        assert until(lambda: one.get("/v1/goals/support-bot").json()["status"] == "paused")
        assert one.get("/v1/goals/support-bot").json()["weight"] == 5
        # A learning job naming it is accepted on either node.
        named = two.post(
            "/v1/learning/jobs",
            json={"kind": "quantize", "model": "b", "goal": "support-bot",
                  "params": {"type": "q8_0"}},
        )  # fmt: skip
        assert named.status_code == 202, named.text
        assert named.json()["status"] == "pending"  # its goal is paused
        assert two.delete(f"/v1/learning/jobs/{named.json()['id']}").status_code == 200
        assert one.delete("/v1/goals/support-bot").status_code == 200
        assert until(lambda: two.get("/v1/goals/support-bot").status_code == 404)


def test_an_api_key_made_on_one_node_works_on_every_node_until_revoked(
    pair: list[Node],
) -> None:
    n1, n2 = pair
    made = httpx.post(
        f"{n1.url}/v1/keys", json={"name": "team", "role": "user"}, headers=ADMIN_HEADERS
    )
    assert made.status_code == 201, made.text
    key_id, key = made.json()["id"], {"authorization": f"Bearer {made.json()['key']}"}
    assert httpx.get(f"{n1.url}/v1/models", headers=key).status_code == 200
    assert until(lambda: httpx.get(f"{n2.url}/v1/models", headers=key).status_code == 200)
    assert httpx.get(f"{n2.url}/v1/keys/{key_id}", headers=ADMIN_HEADERS).status_code == 200
    # A lease made with it on n2 is its own, seen through n1.
    lease = httpx.post(f"{n2.url}/v1/leases", json={"mb": 1, "ttl_s": 30}, headers=key)
    assert lease.status_code == 201, lease.text
    seen = httpx.get(f"{n1.url}/v1/leases/{lease.json()['id']}", headers=key)
    assert seen.status_code == 200, seen.text

    revoked = httpx.delete(f"{n2.url}/v1/keys/{key_id}", headers=ADMIN_HEADERS)
    assert revoked.status_code == 200, revoked.text
    assert httpx.get(f"{n2.url}/v1/models", headers=key).status_code == 401
    assert until(lambda: httpx.get(f"{n1.url}/v1/models", headers=key).status_code == 401)


def test_a_job_on_a_node_that_is_gone_answers_unavailable(
    tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    """Last: it stops n2 of its own pair."""
    redis_server_or_skip()
    server = RedisServer(tmp_path / "redis").start()
    nodes = [
        Node(tmp_path, "n1", server.url(), [spec(tiny_models, "a")]),
        Node(tmp_path, "n2", server.url(), [spec(tiny_models, "b")]),
    ]
    try:
        n1, n2 = start_all(nodes)
        made = httpx.post(
            f"{n1.url}/v1/jobs",
            json={"model": "b", "prompt": "hi", "options": {"max_tokens": 4}},
            timeout=60,
        )
        assert (made.status_code, made.headers["x-moc-node"]) == (202, "n2"), made.text
        job_id = made.json()["job_id"]
        with n2.client() as http:
            assert until(lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "complete")
            runtime = http.get("/v1/models/b").json()["pid"]
        n2.kill9()
        psutil.Process(runtime).kill()  # the host is gone: its runtime with it
        wait_for_view(n1, lambda found: {n["name"] for n in found["nodes"]} == {"n1"})
        gone = httpx.get(f"{n1.url}/v1/jobs/{job_id}", timeout=10)
        assert gone.status_code == 503, gone.text
        assert gone.json()["error"]["code"] == "unavailable"
        assert "n2" in gone.json()["error"]["message"]
        listed = httpx.get(f"{n1.url}/v1/jobs", timeout=10)
        assert listed.status_code == 200
        assert job_id not in [j["job_id"] for j in listed.json()["data"]]
    finally:
        stop_all(nodes)
        server.stop()
