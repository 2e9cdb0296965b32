"""A key's limits counted across nodes in a real Redis: requests per minute,
requests in flight (a node killed or restarted leaves none behind), the token
bucket with its estimate and settlement, device use published per node, and
Redis gone and back."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from moc.auth.principal import Limits
from moc.auth.quota import DAY, DeviceQuota, day_of
from moc.auth.store import AuthStore
from moc.cluster.limits import DeviceUse, SharedLimits
from moc.errors import RateLimited
from moc.leases.model import Lease
from moc.store.sqlite import Database
from tests.integration.cluster_support import RedisServer

DATABASES = itertools.cycle(range(16))
MIB = 1 << 20
DAY0 = 1_800_000_000.0 - 1_800_000_000.0 % DAY  # a UTC midnight


@pytest.fixture
async def db(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client of a database emptied for the test."""
    client = aioredis.from_url(redis_server.url(next(DATABASES)), socket_timeout=0.5)
    await client.flushdb()
    yield client
    await client.aclose()


async def node(
    db: aioredis.Redis,
    name: str,
    ttl_s: float = 5.0,
    device_use: Callable[[], DeviceUse] | None = None,
) -> SharedLimits:
    """A node's limits, its first heartbeat done."""
    limits = SharedLimits(db, name, ttl_s, *([] if device_use is None else [device_use]))
    await limits.beat()
    return limits


async def test_requests_per_minute_are_counted_once_for_all_nodes(db: aioredis.Redis) -> None:
    n1, n2 = await node(db, "n1"), await node(db, "n2")
    for i in range(5):
        assert await (n1, n2)[i % 2].admit("k", requests_per_minute=5) is not None
    with pytest.raises(RateLimited, match="across the cluster") as caught:
        await n1.admit("k", requests_per_minute=5)
    assert (caught.value.details["limit"], caught.value.details["field"]) == (
        5,
        "requests_per_minute",
    )
    assert 59 < caught.value.retry_after_s <= 60
    with pytest.raises(RateLimited):
        await n2.admit("k", requests_per_minute=5)
    assert await n2.admit("other", requests_per_minute=5) is not None
    assert await db.zcard("moc:rate:k") == 5  # the refused ones were not counted


async def test_requests_in_flight_are_counted_across_nodes_until_done(db: aioredis.Redis) -> None:
    n1, n2 = await node(db, "n1"), await node(db, "n2")
    first = await n1.admit("k", concurrent_requests=2)
    second = await n2.admit("k", concurrent_requests=2)
    with pytest.raises(RateLimited, match="2 requests in flight across the cluster") as caught:
        await n1.admit("k", concurrent_requests=2)
    assert caught.value.details["field"] == "concurrent_requests"
    await n1.finish("k", first, None, 0)
    third = await n2.admit("k", concurrent_requests=2)
    assert await db.hgetall("moc:busy:k") == {n2.busy_field.encode(): b"2"}
    await n2.finish("k", second, None, 0)
    await n2.finish("k", third, None, 0)
    assert await db.exists("moc:busy:k") == 0


async def test_a_node_that_died_stops_counting_when_its_boot_lapses(db: aioredis.Redis) -> None:
    n1, dead = await node(db, "n1"), await node(db, "n2", ttl_s=0.3)
    await dead.admit("k", concurrent_requests=1)  # never finished: killed
    with pytest.raises(RateLimited):
        await n1.admit("k", concurrent_requests=1)
    await asyncio.sleep(0.4)  # no heartbeat since
    assert await n1.admit("k", concurrent_requests=1) is not None
    assert await db.hkeys("moc:busy:k") == [n1.busy_field.encode()]  # dropped from Redis too


async def test_a_node_restarted_under_its_name_does_not_inherit_its_count(
    db: aioredis.Redis,
) -> None:
    before = await node(db, "n1")
    await before.admit("k", concurrent_requests=1)  # in flight when it was killed
    n2 = await node(db, "n2")
    with pytest.raises(RateLimited):
        await n2.admit("k", concurrent_requests=1)
    again = await node(db, "n1")  # the same name, a new process: its first heartbeat
    assert again.boot != before.boot
    assert await n2.admit("k", concurrent_requests=1) is not None


async def test_tokens_are_taken_at_once_and_settled_on_the_usage(db: aioredis.Redis) -> None:
    n1, n2 = await node(db, "n1"), await node(db, "n2")
    seen1 = await n1.admit("k", tokens_per_minute=1000)
    assert seen1 is not None
    assert seen1.tokens == 1000
    spent = n1.spend("k", 1000, 600)
    # n1 counts what it took since its read, before Redis has answered
    assert n1.tokens_left("k", seen1, 1000, seen1.at) == pytest.approx(400)
    assert await spent.sent

    seen2 = await n2.admit("k", tokens_per_minute=1000)
    assert seen2 is not None
    assert seen2.tokens == pytest.approx(400, abs=2)  # refilled a little since
    assert n2.tokens_left("k", seen2, 1000, seen2.at + 6) == pytest.approx(500, abs=2)

    await n1.finish("k", seen1, spent, give_back=600 - 100)  # it used 100
    seen3 = await n2.admit("k", tokens_per_minute=1000)
    assert seen3 is not None
    assert seen3.tokens == pytest.approx(900, abs=2)


async def test_a_bucket_in_debt_refills_on_redis_clock(db: aioredis.Redis) -> None:
    n1 = await node(db, "n1")
    await n1.spend("k", 60_000, 90_000).sent  # more than a minute's worth: a debt
    seen = await n1.admit("k", tokens_per_minute=60_000)
    assert seen is not None
    assert seen.tokens is not None
    assert -30_000 <= seen.tokens < -29_000
    await asyncio.sleep(0.2)  # 1,000 tokens a second
    later = await n1.admit("k", tokens_per_minute=60_000)
    assert later is not None
    assert later.tokens is not None
    assert later.tokens - seen.tokens >= 190
    assert 0 < await db.pttl("moc:tokens:k") <= 91_000  # gone once it would be full


async def test_device_use_is_published_per_node_and_read_from_the_others(
    db: aioredis.Redis,
) -> None:
    use = {"n1": ("2030-01-01", {"k": 100.0}), "n2": ("2030-01-01", {"k": 40.0, "j": 5.0})}

    def of(name: str) -> DeviceUse:
        day, found = use[name]
        use[name] = (day, {})  # handed out once, as the quota does
        return day, found

    n1 = await node(db, "n1", device_use=lambda: of("n1"))
    n2 = await node(db, "n2", device_use=lambda: of("n2"))
    seen = await n1.admit("k", device_day="2030-01-01")
    assert seen is not None
    assert seen.device == 40  # n2's, not its own
    assert (await n2.admit("k", device_day="2030-01-01") or seen).device == 100
    use["n2"] = ("2030-01-01", {"k": 70.0})  # a whole value, not an increment
    await n2.publish()
    assert (await n1.admit("k", device_day="2030-01-01") or seen).device == 70
    assert (await n1.admit("k", device_day="2030-01-02") or seen).device == 0
    assert 0 < await db.pttl("moc:device:2030-01-01:k") <= 2 * 86_400_000


def quota(folder: Path, live: list[Lease]) -> DeviceQuota:
    """A node's device quota: k1 may hold 1,000 MiB·s a day."""
    folder.mkdir()
    limits = Limits(device_byte_seconds_per_day=1000 * MIB)
    return DeviceQuota(
        AuthStore(Database(folder / "moc.db")),
        lambda owner: limits if owner == "k1" else None,
        lambda owner: [x for x in live if x.owner == owner],
    )


async def test_a_nodes_quota_counts_the_leases_of_the_others(
    db: aioredis.Redis, tmp_path: Path
) -> None:
    live = [Lease("l1", "host", 50 * MIB, "h", None, 50, False, 1, 10.0, DAY0, DAY0 + 10,
                  owner="k1")]  # fmt: skip
    here, there = quota(tmp_path / "n1", live), quota(tmp_path / "n2", [])
    n1 = await node(db, "n1", device_use=lambda: here.changes(DAY0 + 1))
    n2 = await node(db, "n2", device_use=lambda: there.changes(DAY0 + 1))
    here.check("k1", 50 * MIB, 10, DAY0)  # l1 as it was asked for: 500 MiB·s
    await n1.publish()

    seen = await n2.admit("k1", device_day=day_of(DAY0 + 1)[0])
    assert seen is not None
    assert seen.device == 500 * MIB
    there.seen_elsewhere("k1", seen.device, DAY0 + 1)
    with pytest.raises(RateLimited, match=f"{500 * MIB} of them on other nodes"):
        there.check("k1", 60 * MIB, 10, DAY0 + 1)
    there.check("k1", 50 * MIB, 10, DAY0 + 1)  # 1,000: just fits

    assert here.changes(DAY0 + 1) == (day_of(DAY0)[0], {})  # nothing new to publish
    here.ended(live.pop(), DAY0 + 2)  # released early: 100 MiB·s
    await n1.publish()
    again = await n2.admit("k1", device_day=day_of(DAY0 + 2)[0])
    assert again is not None
    assert again.device == 100 * MIB


async def test_with_redis_gone_nothing_is_refused_and_counts_are_set_again_after(
    tmp_path: Path,
) -> None:
    own = RedisServer(tmp_path / "redis").start()
    client = aioredis.from_url(own.url(), socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        n1 = await node(client, "n1")
        held = await n1.admit("k", concurrent_requests=5, tokens_per_minute=100)
        assert held is not None
        own.kill()
        gone = await n1.admit("k", requests_per_minute=1, concurrent_requests=1)
        assert gone is None  # not asked: not refused
        assert await n1.spend("k", 100, 50).sent is False
        await n1.finish("k", gone, None, 0)
        await n1.beat()  # fails quietly
        own.start()  # empty: what it counted is lost
        await n1.beat()
        assert await client.hgetall("moc:busy:k") == {n1.busy_field.encode(): b"1"}
        await n1.finish("k", held, None, 0)
        assert await client.exists("moc:busy:k") == 0
    finally:
        await client.aclose()
        own.kill()
