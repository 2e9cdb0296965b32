"""A small table every node keeps a copy of, shared through Redis: the
cluster's goals, its API keys.

Redis holds the table as one hash (``moc:<name>``: key → signed JSON
document), a version (``moc:<name>:v``, a random token that changes on every
write) and an epoch (``moc:<name>:epoch``, a random token set when the table
is made in Redis). Each node keeps its own copy as before (in SQLite, read
without Redis) and:

- writes its own changes to Redis, in the order it made them (``put`` and
  ``drop`` queue them; they are sent at once, and while Redis is down they
  wait and are sent when it returns: the last write wins);
- reads the whole table again after a heartbeat that finds the version moved,
  and hands it to ``adopt``, which makes the node's copy the same. A read
  that a change of this node's overtook is not adopted (the next one is).

A change made on one node so reaches the others within about two heartbeats.

A Redis that has no table (new, or restarted empty) gets the table of the
node that finds it so first, and every node that had seen the table before
merges its own in (a document already there is kept): the epoch tells them
the table was made again. With ``keep_mine`` (API keys: never deleted), a
document of this node's that the table lacks is written back.

Every document is signed with the cluster's secret (HMAC-SHA256 over the
table's name, the key and the document): a document in Redis that a node did
not sign — written by anyone else who can reach Redis — is left out and
logged, so write access to Redis alone does not make an API key.

Owner: the event loop; ``put``/``drop`` are called synchronously from the
owner of the local table, ``sync`` from the heartbeat. One lock keeps the
writes in order and a read from crossing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
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


def _new_token() -> bytes:
    """A version or epoch no earlier one equals, even after Redis restarted
    empty (a counter would start again at 1, and a node would take its old 1
    for it)."""
    return secrets.token_hex(8).encode()


class SharedTable:
    def __init__(
        self,
        link: ClusterLink,
        name: str,
        secret: bytes,
        mine: Callable[[], Docs],
        adopt: Callable[[Docs], None],
        keep_mine: bool = False,
    ) -> None:
        self._link = link
        self.name = name
        self._secret = secret
        self._hash = PREFIX + name
        self._version = PREFIX + name + ":v"
        self._epoch_key = PREFIX + name + ":epoch"
        self._mine = mine  # this node's copy, as documents
        self._adopt = adopt  # make this node's copy the cluster's
        self._keep_mine = keep_mine
        self._known: Docs = {}  # the table as last read from or written to Redis
        self._seen: bytes | None = None  # the version ``_known`` is of
        self._epoch: bytes | None = None  # the epoch of the table this node last took
        self._pending: deque[tuple[str, dict[str, Any] | None]] = deque()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- signing -----------------------------------------------------------------------
    def _mac(self, key: str, body: bytes) -> str:
        signed = self.name.encode() + b"\0" + key.encode() + b"\0" + body
        return hmac.new(self._secret, signed, hashlib.sha256).hexdigest()

    def _signed(self, key: str, doc: dict[str, Any]) -> bytes:
        body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        return orjson.dumps({"doc": orjson.Fragment(body), "mac": self._mac(key, body)})

    def _verified(self, raw: dict[bytes, bytes]) -> Docs:
        docs: Docs = {}
        for rkey, value in raw.items():
            key = rkey.decode(errors="replace")
            try:
                whole = orjson.loads(value)
                doc = whole["doc"]
                body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
                good = hmac.compare_digest(self._mac(key, body), str(whole["mac"]))
            except (ValueError, KeyError, TypeError):
                good = False
            if good and isinstance(doc, dict):
                docs[key] = doc
            else:
                event(log, logging.WARNING, "cluster table: a document not signed by a node left "
                      "out", table=self.name, key=key[:80])  # fmt: skip
        return docs

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
        async with self._lock:
            await self._send_locked()

    async def _send_locked(self) -> None:
        """Write the queued changes in order; on a Redis error they wait."""
        redis = self._link.redis
        try:
            if self._pending and not await redis.exists(self._version):
                await self._seed()  # a Redis that lost the table gets all of it back
        except (RedisError, OSError):
            return
        while self._pending:
            key, doc = self._pending[0]
            version = _new_token()
            try:
                async with redis.pipeline(transaction=True) as pipe:
                    if doc is None:
                        pipe.hdel(self._hash, key)
                    else:
                        pipe.hset(self._hash, key, self._signed(key, doc))
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
        when it moved. A Redis error waits for the next heartbeat; an error in
        ``adopt`` is raised, and the table is read again next time."""
        async with self._lock:
            await self._send_locked()
            if self._pending:
                return
            redis = self._link.redis
            try:
                version, epoch = await redis.mget(self._version, self._epoch_key)
                remade = self._epoch is not None and epoch != self._epoch
                if version is None or remade:
                    await self._seed()
                    version, epoch = await redis.mget(self._version, self._epoch_key)
                if version == self._seen and epoch == self._epoch:
                    return
                raw = await redis.hgetall(self._hash)
            except (RedisError, OSError):
                return
            if self._pending:
                return  # a change of this node's came while reading: read again after it
            docs = self._verified(raw)
            self._known = docs  # first: what adopt reports back as changes is not sent again
            self._adopt(docs)
            self._seen, self._epoch = version, epoch
            if self._keep_mine:
                for key, doc in self._mine().items():
                    if key not in docs:
                        self._queue(key, doc)

    async def _seed(self) -> None:
        """Merge this node's table into Redis's (a document there is kept), and
        name the table's version and epoch if it has none."""
        mine = self._mine()
        async with self._link.redis.pipeline(transaction=True) as pipe:
            for key, doc in mine.items():
                pipe.hsetnx(self._hash, key, self._signed(key, doc))
            pipe.set(self._version, _new_token())  # moved: every node reads the merge
            pipe.set(self._epoch_key, _new_token(), nx=True)
            await pipe.execute()
        event(log, logging.INFO, "cluster table merged", table=self.name, documents=len(mine))
