"""A small table every node keeps a copy of, shared through Redis: the
cluster's goals, its API keys.

Redis holds the table as one hash (``moc:<name>``: key → JSON document) and a
version (``moc:<name>:v``, a random token) that changes on every write. Each node keeps its own
copy as before (in SQLite, read without Redis) and:

- writes its own changes to Redis, in the order it made them (``put`` and
  ``drop`` queue them; they are sent at once, and while Redis is down they
  wait and are sent when it returns: the last write wins);
- reads the whole table again after a heartbeat that finds the version moved,
  and hands it to ``adopt``, which makes the node's copy the same.

A change made on one node so reaches the others within about two heartbeats.
A cluster whose Redis has no table yet (new, or a Redis restarted empty)
gets each node's table merged in, a document already there kept.

Owner: the event loop; ``put``/``drop`` are called synchronously from the
owner of the local table, ``sync`` from the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from moc.cluster.link import PREFIX, ClusterLink
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

Docs = dict[str, dict[str, Any]]


def _new_version() -> bytes:
    """A version no earlier one equals, even after Redis restarted empty (a
    counter would start again at 1, and a node would take its old 1 for it)."""
    return secrets.token_hex(8).encode()


class SharedTable:
    def __init__(
        self,
        link: ClusterLink,
        name: str,
        mine: Callable[[], Docs],
        adopt: Callable[[Docs], None],
    ) -> None:
        self._link = link
        self.name = name
        self._hash = PREFIX + name
        self._version = PREFIX + name + ":v"
        self._mine = mine  # this node's copy, as documents
        self._adopt = adopt  # make this node's copy the cluster's
        self._known: Docs = {}  # the table as last read from or written to Redis
        self._seen: bytes | None = None  # the version ``_known`` is of
        self._pending: deque[tuple[str, dict[str, Any] | None]] = deque()
        self._lock = asyncio.Lock()  # one writer at a time keeps the writes in order
        self._tasks: set[asyncio.Task[None]] = set()

    # --- this node's changes -----------------------------------------------------------
    def put(self, key: str, doc: dict[str, Any]) -> None:
        if self._known.get(key) != doc:
            self._queue(key, doc)

    def drop(self, key: str) -> None:
        if self._seen is None or key in self._known or any(k == key for k, _ in self._pending):
            self._queue(key, None)

    def _queue(self, key: str, doc: dict[str, Any] | None) -> None:
        self._pending.append((key, doc))
        with contextlib.suppress(RuntimeError):  # no loop: sent with the next heartbeat
            task = asyncio.get_running_loop().create_task(self._send())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self) -> None:
        """Write the queued changes in order; on a Redis error they wait."""
        redis = self._link.redis
        async with self._lock:
            try:
                if self._pending and not await redis.exists(self._version):
                    await self._seed()  # a Redis that lost the table gets all of it back
            except (RedisError, OSError):
                return
            while self._pending:
                key, doc = self._pending[0]
                version = _new_version()
                try:
                    async with redis.pipeline(transaction=True) as pipe:
                        if doc is None:
                            pipe.hdel(self._hash, key)
                        else:
                            pipe.hset(self._hash, key, orjson.dumps(doc))
                        pipe.set(self._version, version, get=True)
                        *_, before = await pipe.execute()
                except (RedisError, OSError):
                    return
                self._pending.popleft()
                if doc is None:
                    self._known.pop(key, None)
                else:
                    self._known[key] = doc
                if before is not None and before == self._seen:
                    self._seen = version  # no other write came between

    # --- the cluster's changes ---------------------------------------------------------
    async def sync(self) -> None:
        """After a heartbeat: send what waits, then take the cluster's table
        when it moved. A Redis error waits for the next heartbeat."""
        await self._send()
        if self._pending:
            return
        redis = self._link.redis
        try:
            version = await redis.get(self._version)
            if version is None:
                await self._seed()
                version = await redis.get(self._version)
            if version == self._seen:
                return
            raw = await redis.hgetall(self._hash)
        except (RedisError, OSError):
            return
        docs = {k.decode(): orjson.loads(v) for k, v in raw.items()}
        self._known, self._seen = docs, version
        try:
            self._adopt(docs)
        except (KeyError, ValueError, TypeError) as exc:  # a bad document must not stop the beat
            event(log, logging.ERROR, "cluster table not adopted", table=self.name, error=repr(exc))

    async def _seed(self) -> None:
        """Redis has no table: merge this node's in (a document there is kept)."""
        mine = self._mine()
        async with self._link.redis.pipeline(transaction=True) as pipe:
            for key, doc in mine.items():
                pipe.hsetnx(self._hash, key, orjson.dumps(doc))
            pipe.set(self._version, _new_version(), nx=True)
            await pipe.execute()
        event(log, logging.INFO, "cluster table seeded", table=self.name, documents=len(mine))
