"""Several moc daemons as one cluster over a real Redis, end to end: real
``moc serve`` processes with real llama.cpp runtimes (tiny GGUF models), a
real ``redis-server``, driven over HTTP and with the ``openai`` client.

Membership, routing to a model's holder, placement of a cold model, claims
that keep two nodes from placing one model twice, the forward's secret,
leases held on another node, the per-key limit counted across nodes, a node
killed mid-traffic, Redis killed and back, and a node restarted.

The nodes beat every 0.2 s and are out after 1.5 s of silence. Each test's
cluster gets a Redis database of its own, so that no claim, rate window or
node entry of one test is seen by another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import psutil
import pytest
import redis

from tests.integration.cluster_support import (
    SECRET,
    TTL_S,
    Node,
    RedisServer,
    members,
    model_state,
    start_all,
    stop_all,
    view,
    wait_for_view,
)
from tests.integration.support import chat, metric, spec, wait_for

ADMIN = "admin-secret-for-the-cluster-tests-0123456789"
JWT_SECRET = "a-shared-hs256-secret-for-every-node-0123456789"

# Holds a's one slot for seconds (its context is 4,096).
LONG = {"max_tokens": 4000, "ignore_eos": True}

pytestmark = pytest.mark.timeout(90)


def post_chat(node: Node, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{node.url}/v1/chat/completions",
        json=chat(model, **extra),
        timeout=60,
        headers=node.headers,
    )


def gauge(node: Node, name: str) -> float:
    """An unlabelled metric of ``node``."""
    text = httpx.get(f"{node.url}/metrics", headers=node.headers, timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in {node.name}'s metrics")


def forwards(node: Node, to: str, status: str) -> float:
    with node.client() as http:
        return metric(http, "moc_cluster_forwards_total", node=to, status=status)


def loaded_on(node: Node, model: str) -> str:
    """The model's state on ``node`` as the node itself shows it."""
    answer = httpx.get(f"{node.url}/v1/models/{model}", headers=node.headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["state"])


# --- three nodes for the whole module ------------------------------------------------
@pytest.fixture(scope="module")
def trio(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    tiny_models: dict[str, Path],
) -> Iterator[list[Node]]:
    """n1 knows model a, n2 model b, n3 model c (an embedding model); all on
    database 0."""
    folder = tmp_path_factory.mktemp("trio")
    url = redis_server.url(0)
    embeds = ["--embeddings", "--pooling", "mean"]
    three = [
        Node(folder, "n1", url, [spec(tiny_models, "a")]),
        Node(folder, "n2", url, [spec(tiny_models, "b")]),
        Node(folder, "n3", url, [spec(tiny_models, "c", args=embeds)]),
    ]
    start_all(three)
    yield three
    stop_all(three)


def test_three_nodes_see_each_other_and_every_answer_names_its_node(trio: list[Node]) -> None:
    for node in trio:
        found = view(node)
        assert (found["enabled"], found["node"], found["redis"]) == (True, node.name, "ok")
        assert found["nodes"][0]["name"] == node.name  # itself first
        assert members(found) == {"n1", "n2", "n3"}
        for shown in found["nodes"]:
            assert shown["self"] is (shown["name"] == node.name)
            assert shown["up"] is True
            assert shown["url"].startswith("http://127.0.0.1:")
            assert [d["id"] for d in shown["devices"]] == [f"host-{shown['name']}"]
            assert shown["devices"][0]["capacity_bytes"] > 0
            assert shown["seen_s_ago"] < TTL_S
        models = {n["name"]: [m["name"] for m in n["models"]] for n in found["nodes"]}
        assert models == {"n1": ["a"], "n2": ["b"], "n3": ["c"]}
    with httpx.Client(base_url=trio[0].url, timeout=10) as http:
        for path in ("/health", "/v1/models", "/v1/cluster", "/metrics", "/v1/nope"):
            answer = http.get(path)
            assert answer.headers["x-moc-node"] == "n1", path
        assert http.get("/v1/nope").status_code == 404
    assert gauge(trio[1], "moc_cluster_nodes_up") == 3


def test_a_request_for_a_model_another_node_holds_is_answered_there(trio: list[Node]) -> None:
    n1, n2, _ = trio
    with httpx.Client(base_url=n2.url, timeout=60) as http:
        assert http.post("/v1/models/b/load").status_code == 200
    wait_for_view(n1, lambda found: model_state(found, "n2", "b") == "ready")

    answer = post_chat(n1, "b")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-moc-node"] == "n2"
    assert answer.json()["model"] == "b"
    completion = httpx.post(
        f"{n1.url}/v1/completions", json={"model": "b", "prompt": "hi", "max_tokens": 4}, timeout=60
    )
    assert (completion.status_code, completion.headers["x-moc-node"]) == (200, "n2")

    # Streamed: the chunks come through n1 as n2 writes them, n2 named.
    with httpx.stream(
        "POST", f"{n1.url}/v1/chat/completions", json=chat("b", stream=True), timeout=60
    ) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["x-moc-node"] == "n2"
        assert streamed.headers["content-type"].startswith("text/event-stream")
        text = b"".join(streamed.iter_raw())
    assert text.startswith(b"data: ")
    assert text.rstrip().endswith(b"data: [DONE]")

    with openai.OpenAI(base_url=f"{n1.url}/v1", api_key="unused", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="b", messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True
        )
        assert raw.headers["x-moc-node"] == "n2"
        chunks = list(raw.parse())
    assert len(chunks) >= 2
    assert all(c.model == "b" for c in chunks)
    assert any(c.choices and c.choices[0].delta.content for c in chunks)

    # n1 served nothing of it itself; a model no node knows is answered by n1.
    assert forwards(n1, "n2", "200") >= 4
    assert (loaded_on(n1, "a"), gauge(n1, "moc_requests_in_flight")) == ("stopped", 0)

    # c is cold and only n3 knows it: placed there, and embeddings come back.
    embedded = httpx.post(
        f"{n1.url}/v1/embeddings", json={"model": "c", "input": ["hi", "there"]}, timeout=60
    )
    assert (embedded.status_code, embedded.headers["x-moc-node"]) == (200, "n3"), embedded.text
    vectors = [item["embedding"] for item in embedded.json()["data"]]
    assert len(vectors) == 2
    assert len(vectors[0]) > 0
    assert loaded_on(trio[2], "c") == "ready"
    unknown = post_chat(n1, "zzz")
    assert (unknown.status_code, unknown.headers["x-moc-node"]) == (404, "n1")
    assert unknown.json()["error"]["code"] == "model_not_found"


def test_a_forward_needs_the_cluster_secret_and_is_not_forwarded_again(trio: list[Node]) -> None:
    n1 = trio[0]
    url = f"{n1.url}/v1/chat/completions"
    for secret in (None, "wrong", SECRET[:-1], SECRET + "x"):
        headers = {"x-moc-forwarded-by": "n2"}
        if secret is not None:
            headers["x-moc-cluster-secret"] = secret
        refused = httpx.post(url, json=chat("a"), headers=headers, timeout=10)
        assert refused.status_code == 401, (secret, refused.text)
        assert refused.json()["error"]["code"] == "unauthenticated"
        assert refused.headers["x-moc-node"] == "n1"
    # A caller other than a node may not smuggle one in either.
    smuggled = httpx.get(
        f"{n1.url}/v1/leases",
        headers={"x-moc-forwarded-by": "n2", "x-moc-caller": '{"id":"x","role":"admin"}'},
        timeout=10,
    )
    assert smuggled.status_code == 401
    # With the secret, n1 serves it itself: b (which only n2 knows) is not
    # sent on to n2 again.
    proper = {"x-moc-forwarded-by": "n2", "x-moc-cluster-secret": SECRET}
    served_here = httpx.post(url, json=chat("b"), headers=proper, timeout=10)
    assert (served_here.status_code, served_here.headers["x-moc-node"]) == (404, "n1")
    assert served_here.json()["error"]["code"] == "model_not_found"
    # A lease id naming n2, forwarded to n1: n1 looks only at its own leases.
    here = httpx.get(f"{n1.url}/v1/leases/n2.0123456789abcdef", headers=proper, timeout=10)
    assert (here.status_code, here.headers["x-moc-node"]) == (404, "n1")


def test_a_lease_is_held_on_the_node_asked_for_and_answered_from_any(trio: list[Node]) -> None:
    n1, n2, n3 = trio
    with (
        httpx.Client(base_url=n1.url, timeout=30) as h1,
        httpx.Client(base_url=n2.url, timeout=30) as h2,
        httpx.Client(base_url=n3.url, timeout=30) as h3,
    ):
        made = h1.post("/v1/leases", json={"mb": 8, "ttl_s": 30, "holder": "x", "node": "n2"})
        assert made.status_code == 201, made.text
        assert made.headers["x-moc-node"] == "n2"
        lease = made.json()
        lid, token = lease["id"], lease["fencing_token"]
        assert lid.startswith("n2.")
        assert made.headers["location"] == f"/v1/leases/{lid}"
        assert lease["device"] == "host-n2"

        assert [x["id"] for x in h2.get("/v1/leases").json()["leases"]] == [lid]
        assert h1.get("/v1/leases").json()["leases"] == []
        assert h3.get("/v1/leases").json()["leases"] == []

        got = h3.get(f"/v1/leases/{lid}")
        assert (got.status_code, got.headers["x-moc-node"]) == (200, "n2")
        assert got.json()["fencing_token"] == token

        renewed = h3.post(f"/v1/leases/{lid}/renew", json={"ttl_s": 60, "fencing_token": token})
        assert (renewed.status_code, renewed.headers["x-moc-node"]) == (200, "n2"), renewed.text
        assert (renewed.json()["fencing_token"], renewed.json()["ttl_s"]) == (token, 60)
        wrong = h1.post(f"/v1/leases/{lid}/renew", json={"fencing_token": token + 1})
        assert wrong.status_code == 409, wrong.text
        assert wrong.json()["error"]["code"] == "fencing_token_mismatch"

        # Its events, streamed through n3 while n1 releases it.
        with h3.stream("GET", f"/v1/leases/{lid}/events") as events:
            assert (events.status_code, events.headers["x-moc-node"]) == (200, "n2")
            released = h1.delete(f"/v1/leases/{lid}", params={"fencing_token": token})
            assert released.status_code == 200, released.text
            assert released.json()["released"] is True
            lines = [line for line in events.iter_lines() if line.startswith("data:")]
        assert '"event":"ended"' in lines[-1].replace(" ", "")
        assert '"state":"released"' in lines[-1].replace(" ", "")
        assert h2.get("/v1/leases").json()["leases"] == []
        assert h3.get(f"/v1/leases/{lid}").status_code in (404, 410)

        # Too big for n1 as it is: held on the other node with the most room.
        capacity = view(n1)["nodes"][0]["devices"][0]["capacity_bytes"]
        big = h1.post("/v1/leases", json={"bytes": capacity - 8 * 2**20, "ttl_s": 30})
        assert big.status_code == 201, big.text
        more = h1.post("/v1/leases", json={"bytes": 32 * 2**20, "ttl_s": 30})
        assert more.status_code == 201, more.text
        assert more.headers["x-moc-node"] in ("n2", "n3")
        assert more.json()["id"].startswith(more.headers["x-moc-node"] + ".")
        for done in (big.json()["id"], more.json()["id"]):
            assert h2.delete(f"/v1/leases/{done}").status_code == 200

        nowhere = h1.post("/v1/leases", json={"mb": 1, "node": "n9"})
        assert nowhere.status_code == 404
        assert nowhere.headers["x-moc-node"] == "n1"


def test_a_node_restarted_with_its_name_rejoins(trio: list[Node]) -> None:
    n1, _, n3 = trio
    made = httpx.post(f"{n1.url}/v1/leases", json={"mb": 2, "ttl_s": 60, "node": "n3"}, timeout=10)
    assert made.status_code == 201, made.text
    lease = made.json()
    assert n3.stop() == 0
    # A clean stop leaves at once: no wait for the TTL.
    wait_for_view(n1, lambda found: members(found) == {"n1", "n2"}, timeout=TTL_S)
    n3.start(timeout=60)
    for node in trio:
        wait_for_view(node, lambda found: members(found) == {"n1", "n2", "n3"})
    assert view(n3)["redis"] == "ok"
    # Its leases came back with it (moc keeps them across a restart).
    got = httpx.get(f"{n1.url}/v1/leases/{lease['id']}", timeout=10)
    assert (got.status_code, got.headers["x-moc-node"]) == (200, "n3"), got.text
    assert got.json()["fencing_token"] == lease["fencing_token"]
    released = httpx.delete(f"{n1.url}/v1/leases/{lease['id']}", timeout=10)
    assert released.status_code == 200


# --- placement of a cold model -------------------------------------------------------
def small_and_large(
    tmp_path: Path, db: str, tiny_models: dict[str, Path], nodes: list[Node]
) -> list[Node]:
    """Two nodes that know a (16 MiB) and c (80 MiB): n1's 64 MiB device can
    never hold c, n2's 256 MiB can."""
    models = [
        spec(tiny_models, "a", memory="16MiB", ctx=4096),
        spec(tiny_models, "c", memory="80MiB"),
    ]
    nodes += [
        Node(tmp_path, "n1", db, models, size="64MiB"),
        Node(tmp_path, "n2", db, models, size="256MiB"),
    ]
    return start_all(nodes)


def test_a_cold_model_is_placed_on_the_node_with_room_for_it(
    tmp_path: Path, fresh_db: str, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    n1, n2 = small_and_large(tmp_path, fresh_db, tiny_models, nodes)
    answer = post_chat(n1, "c")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-moc-node"] == "n2"
    assert (loaded_on(n1, "c"), loaded_on(n2, "c")) == ("stopped", "ready")
    with n1.client() as http:
        assert metric(http, "moc_cluster_placements_total", where="there") == 1
    # Placed, c is where it is ready: n1 sends the next one there without a claim.
    again = post_chat(n1, "c")
    assert (again.status_code, again.headers["x-moc-node"]) == (200, "n2")


def test_a_cold_model_is_not_placed_on_an_idle_node_too_small_for_it(
    tmp_path: Path, fresh_db: str, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    """n2 is busy (a long answer in flight) and n1 idle: only c's size can send it to n2."""
    n1, n2 = small_and_large(tmp_path, fresh_db, tiny_models, nodes)
    with Busy(n2, "a"):
        wait_for_view(n1, lambda found: in_flight(found, "n2") > 0)
        answer = post_chat(n1, "c")
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-moc-node"] == "n2"
        assert (loaded_on(n1, "c"), loaded_on(n2, "c")) == ("stopped", "ready")


class Busy:
    """A long streamed answer from ``node`` in a thread, in flight until the
    block ends (the client then goes away, and moc stops it)."""

    def __init__(self, node: Node, model: str) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(node, model), daemon=True)

    def _run(self, node: Node, model: str) -> None:
        body = chat(model, stream=True, **LONG)
        try:
            with httpx.stream(
                "POST", f"{node.url}/v1/chat/completions", json=body, timeout=60
            ) as r:
                for _ in r.iter_raw():
                    if self._done.is_set():
                        return
        except httpx.HTTPError:
            pass

    def __enter__(self) -> Busy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(30)


def in_flight(found: dict[str, Any], node: str) -> int:
    """The node's requests in flight in ``found``; 0 while it is not in it (a
    heartbeat late past the tests' short TTL on a loaded machine drops it
    for a moment)."""
    return sum(int(n["in_flight"]) for n in found["nodes"] if n["name"] == node)


def test_two_nodes_asked_at_once_place_a_cold_model_once(
    tmp_path: Path, fresh_db: str, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    models = [spec(tiny_models, "a"), spec(tiny_models, "c")]
    nodes += [Node(tmp_path, f"n{i}", fresh_db, models) for i in (1, 2)]
    n1, n2 = start_all(nodes)

    answers: dict[str, httpx.Response] = {}
    go = threading.Barrier(2)

    def ask(node: Node) -> None:
        go.wait()
        answers[node.name] = post_chat(node, "c")

    threads = [threading.Thread(target=ask, args=(n,)) for n in (n1, n2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {k: v.status_code for k, v in answers.items()} == {"n1": 200, "n2": 200}
    served = {v.headers["x-moc-node"] for v in answers.values()}
    assert len(served) == 1, served
    states = {n.name: loaded_on(n, "c") for n in (n1, n2)}
    assert sorted(states.values()) == ["ready", "stopped"], states
    (holder,) = [name for name, state in states.items() if state == "ready"]
    assert served == {holder}

    # A placement another node claimed in Redis is kept: a was claimed for n2,
    # though n1 (the first by name of two equal nodes) would take it itself.
    db = redis.Redis.from_url(fresh_db)
    try:
        assert db.get("moc:place:c") == holder.encode()
        db.set("moc:place:a", "n2", px=30_000)
    finally:
        db.close()
    answer = post_chat(n1, "a")
    assert (answer.status_code, answer.headers["x-moc-node"]) == (200, "n2")
    assert (loaded_on(n1, "a"), loaded_on(n2, "a")) == ("stopped", "ready")


# --- the per-key limit, across nodes --------------------------------------------------
def token(subject: str, role: str) -> str:
    claims = {"sub": subject, "role": role, "exp": int(time.time()) + 600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def test_requests_per_minute_are_counted_across_the_nodes(
    tmp_path: Path, fresh_db: str, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    """A token's subject is one caller on every node: 60 a minute across three
    nodes admits 60, however they are spread, and a request one node forwards
    to another is counted once. An API key made on one node works on all."""
    auth = {
        "enabled": True,
        "jwt": {"secret": JWT_SECRET, "limits": {"requests_per_minute": 60}},
    }
    admin = {"authorization": f"Bearer {ADMIN}"}
    nodes += [
        Node(tmp_path, f"n{i}", fresh_db, [spec(tiny_models, "a")], env={"MOC_ADMIN_KEY": ADMIN},
             headers=admin, auth=auth)
        for i in (1, 2, 3)
    ]  # fmt: skip
    n1, n2, n3 = start_all(nodes)
    assert view(n1)["redis"] == "ok"

    caller = {"authorization": f"Bearer {token('svc', 'user')}"}
    first = httpx.post(
        f"{n1.url}/v1/leases", json={"mb": 1, "ttl_s": 60, "node": "n2"}, headers=caller
    )
    assert first.status_code == 201, first.text
    lid = first.json()["id"]
    # Round robin: through n1 (forwarded to n2, which holds the lease), n2, n3.
    asks = [
        (n1, f"/v1/leases/{lid}"),
        (n2, "/v1/models"),
        (n3, f"/v1/leases/{lid}"),
    ]
    statuses: list[int] = []
    refused: list[httpx.Response] = []
    with httpx.Client(timeout=10, headers=caller) as http:
        for i in range(89):
            node, path = asks[i % 3]
            answer = http.get(node.url + path)
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                refused.append(answer)
    admitted = 1 + statuses.count(200)
    assert set(statuses) <= {200, 429}, statuses
    assert 59 <= admitted <= 61, (admitted, statuses)
    assert statuses[:58] == [200] * 58  # none refused before the limit
    error = refused[0].json()["error"]
    assert (error["code"], error["details"]["limit"]) == ("rate_limited", 60)
    assert "across the cluster" in error["message"]
    assert 0 < float(refused[0].headers["retry-after"]) <= 60
    # Every node refuses it now, the admin key (no limits) goes on.
    for node in (n1, n2, n3):
        assert httpx.get(f"{node.url}/v1/models", headers=caller).status_code == 429
        assert httpx.get(f"{node.url}/v1/models", headers=admin).status_code == 200

    # An API key made on n1, with its own limit: every node knows it within
    # a few heartbeats, and its 20 a minute are counted across them.
    made = httpx.post(
        f"{n1.url}/v1/keys",
        json={"name": "k", "role": "user", "limits": {"requests_per_minute": 20}},
        headers=admin,
        timeout=10,
    )
    assert made.status_code == 201, made.text
    key = {"authorization": f"Bearer {made.json()['key']}"}
    on_n2 = httpx.post(
        f"{n1.url}/v1/leases", json={"mb": 1, "ttl_s": 60, "node": "n2"}, headers=key
    )
    assert (on_n2.status_code, on_n2.headers["x-moc-node"]) == (201, "n2"), on_n2.text
    key_lease = on_n2.json()["id"]
    key_path = f"/v1/keys/{made.json()['id']}"  # asked with the admin key: no limit
    wait_for(lambda: all(httpx.get(n.url + key_path, headers=admin).status_code == 200
                         for n in (n2, n3)))  # fmt: skip
    through = [
        httpx.get(f"{node.url}/v1/leases/{key_lease}", headers=key).status_code
        for node in (n1, n2, n3) * 8
    ]
    assert through.count(200) == 19, through  # 20 a minute, the acquire included
    assert set(through[19:]) == {429}


# --- a node lost --------------------------------------------------------------------
class Traffic:
    """Chat requests for one model, one after another, through each node given,
    in threads; every outcome kept with its time."""

    def __init__(self, entry: list[Node], model: str) -> None:
        self.results: list[tuple[float, str, int | str, str]] = []  # at, entry, status, served by
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n, model)) for n in entry]
        self._model = model

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, node: Node, model: str) -> None:
        with httpx.Client(base_url=node.url, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post("/v1/chat/completions", json=chat(model, max_tokens=8))
                    outcome: tuple[int | str, str] = (
                        answer.status_code,
                        answer.headers.get("x-moc-node", "?"),
                    )
                except httpx.HTTPError as exc:
                    outcome = (type(exc).__name__, "-")
                self.results.append((time.monotonic(), node.name, *outcome))
                time.sleep(0.01)

    def since(self, t: float) -> list[tuple[float, str, int | str, str]]:
        return [r for r in self.results if r[0] >= t]


def requests_total(node: Node) -> float:
    text = httpx.get(f"{node.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("moc_requests_total{")
    )


def test_a_node_killed_mid_traffic_costs_only_what_it_had_in_flight(
    tmp_path: Path, fresh_db: str, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    models = [spec(tiny_models, "a")]
    nodes += [Node(tmp_path, f"n{i}", fresh_db, models) for i in (1, 2, 3)]
    n1, n2, n3 = start_all(nodes)
    with httpx.Client(base_url=n3.url, timeout=60) as http:
        runtime = http.post("/v1/models/a/load").json()["pid"]
    for node in (n1, n2):
        wait_for_view(node, lambda found: model_state(found, "n3", "a") == "ready")
    held = httpx.post(f"{n1.url}/v1/leases", json={"mb": 4, "ttl_s": 60, "node": "n3"}, timeout=10)
    assert held.status_code == 201, held.text
    lease = held.json()

    try:
        with Traffic([n1, n2], "a") as traffic:
            wait_for(lambda: len(traffic.results) >= 10)
            before = list(traffic.results)
            counted = {n.name: requests_total(n) for n in (n1, n2)}
            killed_at = time.monotonic()
            n3.kill9()
            psutil.Process(runtime).kill()  # the host is gone: its runtime with it
            wait_for(lambda: len(traffic.since(killed_at + TTL_S + 0.5)) >= 10, timeout=30)
    finally:
        if psutil.pid_exists(runtime):
            psutil.Process(runtime).kill()
    assert {r[2] for r in before} == {200}, before
    assert {r[3] for r in before} == {"n3"}  # all served by the holder
    after = traffic.since(killed_at)
    failed = [r for r in after if r[2] != 200]
    assert len(failed) <= 2, failed  # at most the one each thread had in flight to n3
    settled = traffic.since(killed_at + TTL_S + 0.5)
    assert {r[2] for r in settled} == {200}, settled
    assert {r[3] for r in settled} <= {"n1", "n2"}
    for node in (n1, n2):
        assert requests_total(node) > counted[node.name]
        assert members(view(node)) == {"n1", "n2"}
    assert forwards(n1, "n3", "200") > 0

    # Its lease went with it: renewed through a survivor, it is lost.
    lost = httpx.post(
        f"{n1.url}/v1/leases/{lease['id']}/renew",
        json={"fencing_token": lease["fencing_token"]},
        timeout=10,
    )
    assert lost.status_code == 410, lost.text
    error = lost.json()["error"]
    assert (error["code"], error["details"]["node"]) == ("lease_lost", "n3")
    assert httpx.get(f"{n2.url}/v1/leases/{lease['id']}", timeout=10).status_code == 410


def test_a_node_unreachable_but_not_out_is_not_taken_for_lost(
    tmp_path: Path, fresh_db: str, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    """Until its heartbeat lapses, a node that cannot be reached is still in:
    its leases answer 503 (retry), never 410 lease_lost."""
    models = [spec(tiny_models, "a")]
    nodes += [Node(tmp_path, f"n{i}", fresh_db, models, cluster={"ttl_s": 10.0}) for i in (1, 2)]
    n1, n2 = start_all(nodes)
    made = httpx.post(f"{n1.url}/v1/leases", json={"mb": 1, "ttl_s": 60, "node": "n2"}, timeout=10)
    assert made.status_code == 201, made.text
    n2.kill9()
    killed_at = time.monotonic()
    with httpx.Client(base_url=n1.url, timeout=5) as http:
        codes = [http.get(f"/v1/leases/{made.json()['id']}").status_code for _ in range(6)]
    assert time.monotonic() - killed_at < 5  # well inside the TTL
    assert codes == [503] * 6


# --- Redis lost ----------------------------------------------------------------------
def test_with_redis_down_each_node_serves_alone_and_rejoins_when_it_is_back(
    tmp_path: Path, tiny_models: dict[str, Path], nodes: list[Node]
) -> None:
    own = RedisServer(tmp_path / "redis").start()  # killed here: not the module's
    try:
        models = [spec(tiny_models, "a")]
        nodes += [Node(tmp_path, f"n{i}", own.url(), models) for i in (1, 2)]
        n1, n2 = start_all(nodes)
        with httpx.Client(base_url=n1.url, timeout=60) as http:
            assert http.post("/v1/models/a/load").status_code == 200
        wait_for_view(n2, lambda found: model_state(found, "n1", "a") == "ready")
        lease = httpx.post(f"{n2.url}/v1/leases", json={"mb": 1, "node": "n1", "ttl_s": 60}).json()
        assert (post_chat(n2, "a").headers["x-moc-node"]) == "n1"

        with Traffic([n1, n2], "a") as traffic:
            wait_for(lambda: len(traffic.results) >= 4)
            down_at = time.monotonic()
            own.kill()
            for node in (n1, n2):
                found = wait_for_view(node, lambda f: f["redis"] == "down", timeout=2.5)
                assert members(found) == {node.name}
            assert time.monotonic() - down_at < 3
            health = httpx.get(f"{n1.url}/health", timeout=5)
            assert health.status_code == 200
            # Alone, n2 loads a itself rather than forward to n1.
            alone = post_chat(n2, "a")
            assert (alone.status_code, alone.headers["x-moc-node"]) == (200, "n2")
            # A lease of another node cannot be found without the directory.
            unknown = httpx.get(f"{n2.url}/v1/leases/{lease['id']}", timeout=5)
            assert unknown.status_code == 503, unknown.text
            wait_for(lambda: len(traffic.since(down_at + 1)) >= 4)

            own.start()
            for node in (n1, n2):
                found = wait_for_view(node, lambda f: f["redis"] == "ok" and len(f["nodes"]) == 2)
            assert httpx.get(f"{n2.url}/v1/leases/{lease['id']}", timeout=5).status_code == 200
        served = traffic.since(down_at)
        assert {r[2] for r in served} == {200}, served
    finally:
        own.kill()
