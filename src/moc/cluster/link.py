"""The node's line to Redis: its heartbeat, the other nodes as last seen,
placement claims, and the client the shared tables and limits use.

Redis holds the directory only. Each node keeps its own ledger as the truth
for its own devices; what it publishes (``moc:node:<name>``, under a TTL of
``cluster.ttl_s``) is a copy, refreshed every ``cluster.heartbeat_s``. A node
whose key lapsed is out; it rejoins with its next heartbeat.

When Redis cannot be reached the node says so (``/health``: cluster
degraded), forgets the others, and serves only what it can itself; it
rejoins when Redis answers again. Nothing of its own ledger is in Redis, so
nothing of it is lost.

Owner: the event-loop task of the heartbeat writes ``others`` and ``ok``;
the gateway reads them without awaiting between read and use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from moc.cluster.model import NodeInfo
from moc.config import ClusterConfig
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

PREFIX = "moc:"
NODES = PREFIX + "nodes"


class ClusterLink:
    def __init__(
        self,
        config: ClusterConfig,
        snapshot: Callable[[], NodeInfo],
        nodes_up: Callable[[int], None] = lambda _: None,
    ) -> None:
        assert config.redis is not None
        self._nodes_up = nodes_up
        self.config = config
        self.name = config.node
        self._snapshot = snapshot
        self._redis: Any = aioredis.from_url(
            config.redis, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self.others: dict[str, NodeInfo] = {}
        self.unreachable: set[str] = set()  # found so since the last heartbeat
        self.ok = False
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._after_beat: list[Callable[[], Awaitable[None]]] = []

    @property
    def redis(self) -> Any:
        """The client, for the parts of the cluster that keep state in Redis."""
        return self._redis

    def after_beat(self, step: Callable[[], Awaitable[None]]) -> None:
        """Also run ``step`` after each heartbeat that reached Redis (it must
        not raise; a Redis error in it waits for the next beat)."""
        self._after_beat.append(step)

    # --- the heartbeat ------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._beat_forever(), name="cluster-heartbeat")

    async def _beat_forever(self) -> None:
        # The flag, not the cancellation alone, ends it: the Redis client can
        # swallow a cancellation that lands inside one of its calls.
        while not self._closing:
            try:
                await self.beat()
            except Exception:  # a defect must not end the heartbeat: the node would lapse
                log.exception("cluster heartbeat failed; the next one goes on")
            await asyncio.sleep(self.config.heartbeat_s)

    async def beat(self) -> None:
        """Publish this node, and read the others; on a Redis failure, be alone."""
        me = self._snapshot()
        ttl_ms = int(self.config.ttl_s * 1000)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(PREFIX + "node:" + self.name, orjson.dumps(me.to_json()), px=ttl_ms)
                pipe.sadd(NODES, self.name)
                pipe.smembers(NODES)
                *_, members = await pipe.execute()
            names = sorted(m.decode() for m in members if m.decode() != self.name)
            raws = await self._redis.mget([PREFIX + "node:" + n for n in names]) if names else []
        except (RedisError, OSError) as exc:
            if self.ok:
                event(log, logging.WARNING, "cluster degraded: Redis unreachable", error=str(exc))
            self.ok, self.others = False, {}
            self._nodes_up(1)
            return
        if not self.ok:
            event(
                log, logging.INFO, "cluster joined", node=self.name, url=me.url, others=len(names)
            )
        self.ok = True
        others: dict[str, NodeInfo] = {}
        lapsed = []
        for name, raw in zip(names, raws, strict=True):
            if raw is None:
                lapsed.append(name)  # a live node adds itself back with its next beat
            else:
                try:
                    others[name] = NodeInfo.from_json(orjson.loads(raw))
                except (ValueError, KeyError, TypeError) as exc:  # another version's record
                    event(log, logging.WARNING, "cluster node record unreadable", node=name,
                          error=repr(exc))  # fmt: skip
        if lapsed:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.srem(NODES, *lapsed)
        self.others = others
        self.unreachable = set()
        self._nodes_up(1 + len(others))
        for step in self._after_beat:
            try:
                await step()
            except Exception:  # one step's defect must not stop the others, or the beat
                log.exception("cluster heartbeat step failed", extra={"step": repr(step)})

    def forget(self, name: str) -> None:
        """A node that could not be reached: nothing is routed to it until the
        next heartbeat is read (it stays in ``others``, which says it is in
        the cluster: its leases are not lost, only unreachable)."""
        self.unreachable.add(name)

    def reachable(self) -> list[NodeInfo]:
        """The other nodes requests may be routed to."""
        return [n for name, n in self.others.items() if name not in self.unreachable]

    async def close(self) -> None:
        """Stop beating and leave at once (a clean stop is not a lapse)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2 * self.config.heartbeat_s + 1)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(PREFIX + "node:" + self.name)
            await self._redis.srem(NODES, self.name)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    # --- decisions two nodes must not both make ----------------------------------------
    async def claim_placement(self, model: str, node: str) -> str | None:
        """Claim loading ``model`` on ``node``; the node that holds the claim
        (this one's, or one made before), or None when Redis cannot say."""
        key = PREFIX + "place:" + model
        ms = int(self.config.placement_s * 1000)
        try:
            if await self._redis.set(key, node, nx=True, px=ms):
                return node
            winner = await self._redis.get(key)
        except (RedisError, OSError):
            return None
        return None if winner is None else str(winner.decode())
