"""A key's limits counted across the cluster, in Redis, so that N nodes admit
at most a key's limit together, not N times it.

Each node still counts a key itself (:mod:`moc.auth.limits`,
:mod:`moc.auth.quota`); that count holds alone whenever Redis cannot be
asked. In Redis, per key (or JWT subject) ``<key>``:

- ``moc:rate:<key>``, a sorted set: the key's requests of the last minute, a
  sliding window (``requests_per_minute``).
- ``moc:busy:<key>``, a hash: ``<node>/<boot>`` → the key's requests in flight
  on that node (``concurrent_requests``). ``moc:boot:<node>`` names the
  node's running process (its boot), under the cluster's TTL, set again
  after every heartbeat. A field counts only while its boot is the node's
  boot: a node killed is dropped when its key lapses (``ttl_s``), and a node
  restarted under its name drops its old counts with its first heartbeat.
- ``moc:tokens:<key>``, a hash: the key's token bucket (``tokens_per_minute``),
  its level and when it was last written. Gone once it would be full again.
- ``moc:device:<day>:<owner>``, a hash: ``<node>`` → the byte-seconds the
  owner's leases on that node hold that UTC day, ended ones and live ones to
  their expiry (``device_byte_seconds_per_day``). Each node writes only its
  own field, a whole value (never an increment), so a write that failed or
  came twice is put right by the next one. Kept two days.

Every check-and-count is one Lua script, atomic in Redis, on Redis's clock
(nodes' clocks may differ). The scripts read ``moc:boot:<node>`` keys they
were not handed, which a single Redis (what moc uses) allows and Redis
Cluster would not.

What cannot be one script: a request's tokens are estimated by the handler,
after the admission, and the handler cannot wait for Redis there. So the
admission reads the key's bucket, the handler decides on that level less what
this node took of the key since (:meth:`SharedLimits.tokens_left`), and the
estimate is taken from Redis at once (:meth:`SharedLimits.spend`), settled
against the reported usage when the answer is done. Requests of one key
admitted on two nodes within the same few milliseconds may both be admitted
on one level; sooner or later every token is counted in the one bucket.

A Redis error is never a refusal: that request is counted here alone, logged
once while Redis stays unreachable. Counts this node could not give back are
set again after the next heartbeat.

Owner: the event loop; no method awaits between reading and writing its
own state.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from moc.errors import RateLimited
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

PREFIX = "moc:"
BOOT = PREFIX + "boot:"
DEVICE_KEEP_MS = 2 * 86_400_000  # a day's device use outlives its day, for a node behind on time
BUSY_KEEP_MS = 3_600_000  # a key's in-flight hash, refreshed by each admission
MAX_TRACKED = 100_000  # keys whose spending this node remembers; beyond, it starts over

# Published device use: (the UTC day, owner → byte-seconds held on this node).
DeviceUse = tuple[str, dict[str, float]]

_NOW = """
local function now_ms()
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function level(key, now, cap)
  local got = redis.call('HMGET', key, 'level', 'at')
  if not got[1] then return cap end
  return math.min(cap, tonumber(got[1]) + (now - tonumber(got[2])) * cap / 60000)
end
"""

# KEYS: rate, busy, tokens, device.
# ARGV: requests per minute, concurrent cap, tokens per minute (each -1: not
# counted), a unique id for the window, this process's busy field, this
# node's name, 1 to read the device use of the other nodes, the prefix of the
# boot keys, how long the busy hash is kept (ms).
# Returns {0, 0, 0, tokens level or '', device use elsewhere or ''}, or
# {1, wait_ms, in flight} (concurrent), {2, wait_ms, 0} (per minute).
_ADMIT = (
    _NOW
    + """
local rpm, cap, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
if cap >= 0 then
  local busy = 0
  local fields = redis.call('HGETALL', KEYS[2])
  for i = 1, #fields, 2 do
    local field = fields[i]
    local live = field == ARGV[5]
    if not live then
      local node, boot = string.match(field, '^(.*)/([^/]*)$')
      live = node ~= nil and redis.call('GET', ARGV[8] .. node) == boot
    end
    if live then busy = busy + tonumber(fields[i + 1]) else redis.call('HDEL', KEYS[2], field) end
  end
  if busy >= cap then return {1, 1000, busy} end
end
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {2, math.max(1, tonumber(oldest[2]) + 60000 - now), 0}
  end
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
if cap >= 0 then
  redis.call('HINCRBY', KEYS[2], ARGV[5], 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[9])
end
local tokens = ''
if tpm >= 0 then tokens = tostring(level(KEYS[3], now, tpm)) end
local elsewhere = ''
if ARGV[7] == '1' then
  local total = 0
  local fields = redis.call('HGETALL', KEYS[4])
  for i = 1, #fields, 2 do
    if fields[i] ~= ARGV[6] then total = total + tonumber(fields[i + 1]) end
  end
  elsewhere = tostring(total)
end
return {0, 0, 0, tokens, elsewhere}
"""
)

# Add ARGV[2] tokens (negative: take them) to the bucket KEYS[1] of ARGV[1]
# a minute; its level after, which may be below zero (a debt the refill pays).
_ADD = (
    _NOW
    + """
local cap, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local l = math.min(cap, level(KEYS[1], now, cap) + delta)
redis.call('HSET', KEYS[1], 'level', tostring(l), 'at', tostring(now))
-- gone when it would be full again (a debt of more than a day: after a day)
local full = math.min(86400000, math.ceil((cap - l) * 60000 / cap) + 1000)
redis.call('PEXPIRE', KEYS[1], string.format('%d', full))
return tostring(l)
"""
)

# A request done: one fewer in flight for field ARGV[1] of KEYS[1].
_DONE = """
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""


@dataclass(frozen=True)
class Seen:
    """What one request's admission counted and read in Redis."""

    busy: bool  # counted in flight there: to be given back when done
    tokens: float | None  # the key's bucket when read
    at: float  # when it was read (monotonic)
    mark: float  # what this node had taken of the key's tokens when it was asked
    device: float | None  # byte-seconds the key's leases on other nodes hold today


@dataclass(frozen=True)
class Spend:
    """Tokens one request took from its key's bucket in Redis: on their way there."""

    tokens_per_minute: int
    amount: int
    sent: asyncio.Task[bool]  # True once Redis took them


def _nothing() -> DeviceUse:
    return "", {}


class SharedLimits:
    """This node's side of the keys' counts in Redis (the module's docstring
    says what is kept where)."""

    def __init__(
        self,
        redis: Any,
        node: str,
        ttl_s: float,
        device_use: Callable[[], DeviceUse] = _nothing,
    ) -> None:
        """``device_use``: what changed of this node's device use since it
        was last asked, to publish."""
        self._redis = redis
        self.node = node
        self.boot = secrets.token_hex(6)
        self.busy_field = f"{node}/{self.boot}"
        self._ttl_ms = int(ttl_s * 1000)
        self._device_use = device_use
        self._admit = redis.register_script(_ADMIT)
        self._add = redis.register_script(_ADD)
        self._done = redis.register_script(_DONE)
        self._seq = 0
        self._taken: dict[str, float] = {}  # key → tokens this node took in all
        self._busy: dict[str, int] = {}  # key → its requests in flight here, counted in Redis
        self._astray: set[str] = set()  # keys whose count of this node Redis may hold wrong
        self._unsent: dict[tuple[str, str], float] = {}  # (day, owner) → use not yet published
        self._failing = False

    # --- admission ---------------------------------------------------------------
    async def admit(
        self,
        key: str,
        *,
        requests_per_minute: int | None = None,
        concurrent_requests: int | None = None,
        tokens_per_minute: int | None = None,
        device_day: str | None = None,
    ) -> Seen | None:
        """Count one request of ``key`` against the limits given (None: not
        counted) and read its token bucket (``tokens_per_minute`` given) and
        its device use on the other nodes that day (``device_day`` given).

        RateLimited, nothing counted, when the cluster is over a limit;
        None when Redis could not be asked (the request is this node's alone)."""
        self._seq += 1
        mark = self._taken.get(key, 0.0)
        try:
            code, wait_ms, found, *read = await self._admit(
                keys=[
                    PREFIX + "rate:" + key,
                    PREFIX + "busy:" + key,
                    PREFIX + "tokens:" + key,
                    f"{PREFIX}device:{device_day or '-'}:{key}",  # read only with a day
                ],
                args=[
                    _or_none(requests_per_minute),
                    _or_none(concurrent_requests),
                    _or_none(tokens_per_minute),
                    f"{self.busy_field}:{self._seq}",
                    self.busy_field,
                    self.node,
                    0 if device_day is None else 1,
                    BOOT,
                    BUSY_KEEP_MS,
                ],
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)
            if concurrent_requests is not None:
                # The script may have counted it before the answer was lost:
                # this node's count of the key is set again after the next beat.
                self._astray.add(key)
            return None
        self._answered()
        if code == 1:
            raise RateLimited(
                f"key {key} has {found} requests in flight across the cluster; its limit "
                f"(concurrent_requests) is {concurrent_requests}",
                retry_after_s=int(wait_ms) / 1000,
                limit=concurrent_requests,
                field="concurrent_requests",
            )
        if code == 2:
            raise RateLimited(
                f"key {key} is over its limit of {requests_per_minute} requests per minute "
                "across the cluster",
                retry_after_s=int(wait_ms) / 1000,
                limit=requests_per_minute,
                field="requests_per_minute",
            )
        busy = concurrent_requests is not None
        if busy:
            self._busy[key] = self._busy.get(key, 0) + 1
        tokens, device = (float(x) if x else None for x in read)
        return Seen(busy, tokens, time.monotonic(), mark, device)

    # --- tokens ------------------------------------------------------------------
    def tokens_left(self, key: str, seen: Seen, tokens_per_minute: int, now: float) -> float | None:
        """What the key's bucket holds now, as far as this node can tell without
        asking: the level read at admission, refilled since, less what this
        node took of the key since it was read. None: it was not read."""
        if seen.tokens is None:
            return None
        level = min(
            float(tokens_per_minute), seen.tokens + (now - seen.at) * tokens_per_minute / 60
        )
        return level - max(0.0, self._taken.get(key, 0.0) - seen.mark)

    def spend(self, key: str, tokens_per_minute: int, amount: int) -> Spend:
        """Take ``amount`` tokens of ``key`` in Redis, sent at once; the
        request awaits it when done (:meth:`finish`)."""
        if len(self._taken) >= MAX_TRACKED and key not in self._taken:
            self._taken.clear()  # only reads still in flight lose what was taken since
        self._taken[key] = self._taken.get(key, 0.0) + amount
        sent = asyncio.get_running_loop().create_task(
            self._add_tokens(key, tokens_per_minute, -amount)
        )
        return Spend(tokens_per_minute, amount, sent)

    async def _add_tokens(self, key: str, tokens_per_minute: int, delta: float) -> bool:
        try:
            await self._add(keys=[PREFIX + "tokens:" + key], args=[tokens_per_minute, delta])
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False
        self._answered()
        return True

    # --- a request done ------------------------------------------------------------
    async def finish(
        self, key: str, seen: Seen | None, spent: Spend | None, give_back: float
    ) -> None:
        """The request is done: one fewer in flight, and ``give_back`` tokens
        (what was taken less what the answer used; negative when it used more)
        returned, if Redis took them."""
        if seen is not None and seen.busy:
            # This node's count first, with no await: whatever happens to the
            # call below (an error, a cancellation), the next beat sets Redis's.
            left = self._busy.get(key, 0) - 1
            if left > 0:
                self._busy[key] = left
            else:
                self._busy.pop(key, None)
            self._astray.add(key)  # set again with the next beat, at one command per key
            try:
                await self._done(keys=[PREFIX + "busy:" + key], args=[self.busy_field])
            except (RedisError, OSError) as exc:
                self._failed(exc)
            else:
                self._answered()
        if spent is not None and await spent.sent and give_back:
            await self._add_tokens(key, spent.tokens_per_minute, give_back)

    # --- device use, and after each heartbeat ----------------------------------------
    async def publish(self) -> None:
        """Write what changed of this node's device use (kept for the next
        try when Redis cannot be reached)."""
        batch = self._device_batch()
        if not batch:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                _queue_device_use(pipe, self.node, batch)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._answered()
        self._sent(batch)

    async def beat(self) -> None:
        """After each heartbeat: this process named as the node's boot, under
        the cluster's TTL; the node's in-flight counts set again where Redis
        may hold them wrong (all of them when the boot had lapsed: other nodes
        have dropped them); device use published."""
        batch = self._device_batch()
        astray = set(self._astray)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(BOOT + self.node, self.boot, px=self._ttl_ms, get=True)
                for key in astray:
                    self._queue_busy(pipe, key)
                _queue_device_use(pipe, self.node, batch)
                before, *_ = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return
        self._answered()
        self._astray -= astray
        self._sent(batch)
        if before is None or before.decode() != self.boot:
            await self._reset_busy()

    async def _reset_busy(self) -> None:
        """Every count of this node set again, as this node holds it."""
        keys = list(self._busy)
        if not keys:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    self._queue_busy(pipe, key)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            self._astray.update(keys)

    def _queue_busy(self, pipe: Any, key: str) -> None:
        count = self._busy.get(key, 0)
        if count > 0:
            pipe.hset(PREFIX + "busy:" + key, self.busy_field, count)
            pipe.pexpire(PREFIX + "busy:" + key, BUSY_KEEP_MS)
        else:
            pipe.hdel(PREFIX + "busy:" + key, self.busy_field)

    def _device_batch(self) -> dict[tuple[str, str], float]:
        """What changed of the device use, with what could not be sent before."""
        day, use = self._device_use()
        for owner, amount in use.items():
            self._unsent[day, owner] = amount
        return dict(self._unsent)

    def _sent(self, batch: dict[tuple[str, str], float]) -> None:
        for place, amount in batch.items():
            if self._unsent.get(place) == amount:  # not changed again while it went
                del self._unsent[place]

    # --- Redis's state, logged once per change ------------------------------------------
    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            event(
                log,
                logging.WARNING,
                "shared limits: Redis unreachable, keys counted on this node alone",
                error=str(exc),
            )

    def _answered(self) -> None:
        if self._failing:
            self._failing = False
            event(log, logging.INFO, "shared limits: Redis answers again")


def _or_none(limit: int | None) -> int:
    return -1 if limit is None else limit


def _queue_device_use(pipe: Any, node: str, batch: dict[tuple[str, str], float]) -> None:
    for (day, owner), amount in batch.items():
        key = f"{PREFIX}device:{day}:{owner}"
        pipe.hset(key, node, repr(amount))
        pipe.pexpire(key, DEVICE_KEEP_MS)
