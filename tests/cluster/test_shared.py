"""A table the nodes share through a real Redis: changes go out in order and
reach the other copy, a new Redis gets the table merged in, and changes made
while Redis is down go out when it is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from moc.cluster.link import ClusterLink
from moc.cluster.model import NodeInfo
from moc.cluster.shared import Docs, SharedTable
from moc.config import ClusterConfig
from tests.integration.cluster_support import RedisServer, redis_server_or_skip

SECRET = "x" * 32


class Copy:
    """One node's copy of the table: what it holds and what it was handed."""

    def __init__(self, docs: Docs | None = None) -> None:
        self.docs: Docs = dict(docs or {})
        self.adopted: list[Docs] = []

    def adopt(self, docs: Docs) -> None:
        self.adopted.append(docs)
        self.docs = dict(docs)


class Merging(Copy):
    """A copy that never drops a document (as the API keys are kept)."""

    def adopt(self, docs: Docs) -> None:
        self.adopted.append(docs)
        self.docs.update(docs)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    redis_server_or_skip()
    found = RedisServer(tmp_path / "redis").start()
    yield found
    found.stop()


def link(server: RedisServer, name: str) -> ClusterLink:
    config = ClusterConfig(redis=server.url(), node=name, secret=SECRET)
    return ClusterLink(config, lambda: NodeInfo(name, f"http://{name}", 0.0))


@pytest.fixture
async def links(server: RedisServer) -> AsyncIterator[list[ClusterLink]]:
    made = [link(server, "a"), link(server, "b")]
    yield made
    for one in made:
        await one.close()


def table(link: ClusterLink, copy: Copy, keep_mine: bool = False) -> SharedTable:
    return SharedTable(link, "things", SECRET.encode(), lambda: copy.docs, copy.adopt, keep_mine)


async def test_a_change_on_one_node_reaches_the_other_in_order(links: list[ClusterLink]) -> None:
    mine, theirs = Copy({"seed": {"v": 0}}), Copy()
    a, b = table(links[0], mine), table(links[1], theirs)
    await a.sync()  # an empty Redis: a's table goes in
    await b.sync()
    assert theirs.docs == {"seed": {"v": 0}}

    for v in range(1, 6):  # five changes of one document, in a burst
        a.put("x", {"v": v})
    a.drop("seed")
    await a.sync()
    await b.sync()
    assert theirs.docs == {"x": {"v": 5}}
    adopted = len(theirs.adopted)
    await b.sync()  # nothing moved: nothing handed over again
    assert len(theirs.adopted) == adopted

    # What b adopted and then reports as its own change is not written back.
    b.put("x", {"v": 5})
    await b.sync()
    await a.sync()
    assert mine.adopted[-1] == {"x": {"v": 5}}


async def test_changes_made_while_redis_is_down_go_out_when_it_is_back(
    server: RedisServer, links: list[ClusterLink]
) -> None:
    mine, theirs = Copy(), Copy()
    a, b = table(links[0], mine), table(links[1], theirs)
    for key in ("x", "y"):
        mine.docs[key] = {"v": 1}
        a.put(key, {"v": 1})
    await a.sync()
    await b.sync()
    assert theirs.docs == {"x": {"v": 1}, "y": {"v": 1}}

    server.kill()
    mine.docs["x"] = {"v": 2}
    a.put("x", {"v": 2})  # one change: the version it makes is new all the same
    await a.sync()  # refused quietly: it waits
    await b.sync()
    assert theirs.docs == {"x": {"v": 1}, "y": {"v": 1}}

    server.start()  # the same port, and empty: a's whole table goes back in
    await a.sync()
    await b.sync()
    assert theirs.docs == {"x": {"v": 2}, "y": {"v": 1}}


async def test_a_table_the_copy_cannot_take_is_read_again_next_time(
    links: list[ClusterLink],
) -> None:
    picky = Copy()

    def adopt(docs: Docs) -> None:
        if "bad" in docs:
            raise ValueError("not a thing")
        picky.adopt(docs)

    b = SharedTable(links[1], "things", SECRET.encode(), dict, adopt)
    a = table(links[0], Copy())
    a.put("bad", {"v": 1})
    await a.sync()
    with pytest.raises(ValueError, match="not a thing"):  # the heartbeat logs it, goes on
        await b.sync()
    assert picky.adopted == []
    a.drop("bad")
    a.put("y", {"v": 2})
    await a.sync()
    await b.sync()
    assert picky.docs == {"y": {"v": 2}}


async def test_a_document_no_node_signed_is_left_out(
    server: RedisServer, links: list[ClusterLink]
) -> None:
    mine, theirs = Copy(), Copy()
    a, b = table(links[0], mine), table(links[1], theirs)
    a.put("x", {"v": 1})
    await a.sync()
    forged = {"doc": {"v": 666}, "mac": "0" * 64}
    raw = links[0].redis
    await raw.hset("moc:things", "evil", orjson.dumps(forged))
    await raw.hset("moc:things", "x", orjson.dumps({"doc": {"v": 2}, "mac": "1" * 64}))
    await raw.set("moc:things:v", "moved")
    await b.sync()
    assert theirs.docs == {}  # x was changed by someone without the secret: left out too
    a.put("y", {"v": 3})
    await a.sync()
    await b.sync()
    assert theirs.docs == {"y": {"v": 3}}


async def test_a_change_made_while_the_table_is_read_is_not_lost(
    links: list[ClusterLink],
) -> None:
    mine = Copy()
    a = table(links[0], mine)
    await a.sync()
    reading = asyncio.create_task(a.sync())
    await asyncio.sleep(0)  # the read is under way
    mine.docs["g"] = {"v": 1}  # made here, as the goal service would
    a.put("g", {"v": 1})
    await reading
    assert mine.docs == {"g": {"v": 1}}  # the read it overtook was not adopted
    await a.sync()
    theirs = Copy()
    await table(links[1], theirs).sync()
    assert theirs.docs == {"g": {"v": 1}}


async def test_a_redis_restarted_empty_gets_every_nodes_table_back(
    server: RedisServer, links: list[ClusterLink]
) -> None:
    mine, theirs = Copy({"x": {"v": 1}}), Copy({"y": {"v": 2}})
    a, b = table(links[0], mine), table(links[1], theirs)
    await a.sync()
    await b.sync()  # b takes a's table: the cluster's, made first
    assert theirs.docs == {"x": {"v": 1}}
    theirs.docs["y"] = {"v": 2}  # made on b while ...
    server.kill()
    b.put("y", {"v": 2})  # ... Redis was down: it waits
    server.start()  # empty
    await a.sync()  # a finds no table: its own goes in, under a new epoch
    await b.sync()  # b sees the new epoch: merges its own, sends what waited
    await a.sync()
    assert mine.docs == theirs.docs == {"x": {"v": 1}, "y": {"v": 2}}


async def test_keep_mine_writes_back_what_the_table_lacks(
    server: RedisServer, links: list[ClusterLink]
) -> None:
    mine = Merging()
    a = table(links[0], mine, keep_mine=True)
    await a.sync()
    mine.docs["k"] = {"v": 1}  # a key this node has and Redis lost
    await links[0].redis.set("moc:things:v", "moved")
    await a.sync()
    await a.sync()
    theirs = Copy()
    await table(links[1], theirs).sync()
    assert theirs.docs == {"k": {"v": 1}}


async def test_a_step_that_fails_does_not_stop_the_heartbeat(links: list[ClusterLink]) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("a defect")

    async def after() -> None:
        ran.append("after")

    links[0].after_beat(broken)
    links[0].after_beat(after)
    await links[0].beat()
    await links[0].beat()
    assert ran == ["after", "after"]
    assert links[0].ok
