"""A table the nodes share through a real Redis: changes go out in order and
reach the other copy, a new Redis gets the table merged in, and changes made
while Redis is down go out when it is back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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


def table(link: ClusterLink, copy: Copy) -> SharedTable:
    return SharedTable(link, "things", lambda: copy.docs, copy.adopt)


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


async def test_a_document_the_copy_cannot_take_does_not_stop_the_sync(
    links: list[ClusterLink],
) -> None:
    picky = Copy()

    def adopt(docs: Docs) -> None:
        if "bad" in docs:
            raise ValueError("not a thing")
        picky.adopt(docs)

    b = SharedTable(links[1], "things", dict, adopt)
    a = table(links[0], Copy())
    a.put("bad", {"v": 1})
    await a.sync()
    await b.sync()  # logged, not raised
    assert picky.adopted == []
    a.drop("bad")
    a.put("y", {"v": 2})
    await a.sync()
    await b.sync()
    assert picky.docs == {"y": {"v": 2}}
