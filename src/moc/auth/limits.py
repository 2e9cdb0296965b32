"""Per-key rate limits: requests and tokens per minute, requests at once.

Each per-minute limit is a token bucket holding at most a minute's worth and
refilled continuously, so a key may burst up to its limit and then goes at
the limit's pace. Tokens are charged an estimate when a request is admitted
and settled against the usage the backend reports when the answer is done.

Counters are this daemon's. In a cluster the gateway counts a key across
the nodes as well (:mod:`moc.cluster.limits`), and a request passes both
counts; this one is what holds when Redis cannot be asked.

Owner: the event-loop thread; every method runs to completion without an
await, so a check and its charge cannot be split by another request.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from moc.auth.principal import Principal
from moc.errors import RateLimited

MINUTE = 60.0
MAX_TRACKED = 100_000  # buckets kept; beyond, full (idle) ones are dropped


@dataclass
class Bucket:
    capacity: float
    level: float
    at: float

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.capacity / MINUTE)
        self.at = now

    def seconds_until(self, amount: float) -> float:
        """How long until the bucket holds ``amount`` (at most its capacity)."""
        short = min(amount, self.capacity) - self.level
        return max(0.0, short * MINUTE / self.capacity)

    @property
    def full(self) -> bool:
        return self.level >= self.capacity


def _bucket(capacity: int, now: float) -> Bucket:
    return Bucket(float(capacity), float(capacity), now)


@dataclass
class KeyState:
    requests: Bucket | None = None
    tokens: Bucket | None = None
    in_flight: int = 0


def _reset(seconds: float) -> str:
    """OpenAI's way of writing a reset time: ``1s``, ``6m0s``, ``20ms``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


class RateLimits:
    def __init__(self) -> None:
        self._state: dict[str, KeyState] = {}

    def _of(self, principal: Principal, now: float) -> KeyState:
        state = self._state.get(principal.id)
        if state is None:
            if len(self._state) >= MAX_TRACKED:  # many JWT subjects: drop the idle ones
                self._drop_idle(now)
            limits = principal.limits
            state = self._state[principal.id] = KeyState(
                None if limits.requests_per_minute is None
                else _bucket(limits.requests_per_minute, now),
                None if limits.tokens_per_minute is None
                else _bucket(limits.tokens_per_minute, now),
            )  # fmt: skip
        return state

    def _drop_idle(self, now: float) -> None:
        for key, state in list(self._state.items()):
            for bucket in (state.requests, state.tokens):
                if bucket is not None:
                    bucket.refill(now)
            if state.in_flight == 0 and all(
                b is None or b.full for b in (state.requests, state.tokens)
            ):
                del self._state[key]

    def admit(self, principal: Principal, now: float) -> None:
        """Count one request; RateLimited (nothing counted) when over a limit."""
        limits = principal.limits
        state = self._of(principal, now)
        cap = limits.concurrent_requests
        if cap is not None and state.in_flight >= cap:
            raise RateLimited(
                f"key {principal.id} has {state.in_flight} requests in flight; "
                f"its limit (concurrent_requests) is {cap}",
                retry_after_s=1.0,
                limit=cap,
                field="concurrent_requests",
            )
        bucket = state.requests
        if bucket is not None:
            bucket.refill(now)
            if bucket.level < 1:
                raise RateLimited(
                    f"key {principal.id} is over its limit of {limits.requests_per_minute} "
                    "requests per minute",
                    retry_after_s=bucket.seconds_until(1),
                    limit=limits.requests_per_minute,
                    field="requests_per_minute",
                )
            bucket.level -= 1
        state.in_flight += 1

    def refund(self, principal: Principal, now: float) -> None:
        """Take back an admission refused after all (by the cluster's count)."""
        state = self._state.get(principal.id)
        if state is None:
            return
        if state.requests is not None:
            state.requests.refill(now)
            state.requests.level = min(state.requests.capacity, state.requests.level + 1)
        self.done(principal)

    def done(self, principal: Principal) -> None:
        state = self._state.get(principal.id)
        if state is not None and state.in_flight > 0:
            state.in_flight -= 1

    def charge_tokens(
        self, principal: Principal, estimate: int, now: float, cluster: float | None = None
    ) -> int:
        """Take ``estimate`` tokens for a request about to run, and return what
        was taken; RateLimited when the bucket holds fewer (a request larger
        than a whole minute's worth waits for a full bucket and takes it all).
        ``cluster``: what the key's bucket across the cluster holds, as this
        node last saw it; it must hold the request too."""
        bucket = self._of(principal, now).tokens
        if bucket is None:
            return 0
        bucket.refill(now)
        need = min(float(estimate), bucket.capacity)
        if cluster is not None and cluster < need:
            raise RateLimited(
                f"key {principal.id} is over its limit of {principal.limits.tokens_per_minute} "
                f"tokens per minute across the cluster (this request is estimated at {estimate})",
                retry_after_s=(need - cluster) * MINUTE / bucket.capacity,
                limit=principal.limits.tokens_per_minute,
                field="tokens_per_minute",
            )
        if bucket.level < need:
            raise RateLimited(
                f"key {principal.id} is over its limit of {principal.limits.tokens_per_minute} "
                f"tokens per minute (this request is estimated at {estimate})",
                retry_after_s=bucket.seconds_until(need),
                limit=principal.limits.tokens_per_minute,
                field="tokens_per_minute",
            )
        bucket.level -= need
        return int(need)

    def settle_tokens(self, principal: Principal, charged: int, used: int, now: float) -> None:
        """The answer used ``used`` tokens where ``charged`` were taken."""
        state = self._state.get(principal.id)
        if state is None or state.tokens is None:
            return
        state.tokens.refill(now)
        state.tokens.level = min(state.tokens.capacity, state.tokens.level + charged - used)

    def headers(self, principal: Principal, now: float) -> list[tuple[bytes, bytes]]:
        """OpenAI's ``x-ratelimit-*`` headers for the key's per-minute limits."""
        state = self._state.get(principal.id)
        if state is None:
            return []
        found: list[tuple[bytes, bytes]] = []
        for what, bucket in (("requests", state.requests), ("tokens", state.tokens)):
            if bucket is None:
                continue
            bucket.refill(now)
            found += [
                (b"x-ratelimit-limit-" + what.encode(), str(int(bucket.capacity)).encode()),
                (
                    b"x-ratelimit-remaining-" + what.encode(),
                    str(max(0, int(bucket.level))).encode(),
                ),
                (
                    b"x-ratelimit-reset-" + what.encode(),
                    _reset(bucket.seconds_until(bucket.capacity)).encode(),
                ),
            ]
        return found


class FailedAttempts:
    """Bad credentials per client address: past ``per_minute`` an address's
    next failures are answered 429 at once. A valid key is checked first and
    never waits on this, so a flood of bad keys does not slow good callers."""

    def __init__(self, per_minute: int, most: int = MAX_TRACKED) -> None:
        self._per_minute = per_minute
        self._most = most
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()  # least recently failed first

    def note(self, address: str, now: float) -> float | None:
        """Count one failure from ``address``; the seconds to wait when it is
        over its allowance, else None. At most ``most`` addresses are kept:
        the one that failed least recently goes first, in constant time."""
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self._most:
                self._buckets.popitem(last=False)
            bucket = self._buckets[address] = _bucket(self._per_minute, now)
        else:
            self._buckets.move_to_end(address)
        bucket.refill(now)
        if bucket.level < 1:
            return bucket.seconds_until(1)
        bucket.level -= 1
        return None
