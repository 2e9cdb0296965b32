"""Per-key limits as plain arithmetic: token buckets, requests in flight,
OpenAI's rate-limit headers, and bad credentials per address."""

from __future__ import annotations

import pytest

from moc.auth.limits import FailedAttempts, RateLimits
from moc.auth.principal import Limits, Principal
from moc.auth.roles import Role
from moc.errors import RateLimited


def key(**limits: int) -> Principal:
    return Principal("k1", Role.USER, limits=Limits(**limits))


def test_requests_per_minute_bursts_to_the_limit_then_refills_steadily() -> None:
    rl, p = RateLimits(), key(requests_per_minute=60)
    for _ in range(60):
        rl.admit(p, 0.0)
        rl.done(p)
    with pytest.raises(RateLimited) as caught:
        rl.admit(p, 0.0)
    assert caught.value.retry_after_s == pytest.approx(1.0)
    assert caught.value.details["field"] == "requests_per_minute"
    rl.admit(p, 1.0)  # one more a second
    with pytest.raises(RateLimited):
        rl.admit(p, 1.5)


def test_concurrent_requests_count_until_done() -> None:
    rl, p = RateLimits(), key(concurrent_requests=2)
    rl.admit(p, 0.0)
    rl.admit(p, 0.0)
    with pytest.raises(RateLimited, match="in flight"):
        rl.admit(p, 0.0)
    rl.done(p)
    rl.admit(p, 0.0)


def test_a_refused_request_is_not_counted() -> None:
    rl, p = RateLimits(), key(requests_per_minute=1, concurrent_requests=1)
    rl.admit(p, 0.0)
    with pytest.raises(RateLimited):
        rl.admit(p, 0.0)
    rl.done(p)
    with pytest.raises(RateLimited, match="per minute"):  # in flight is 0, the bucket empty
        rl.admit(p, 0.0)


def test_tokens_are_charged_an_estimate_and_settled_on_the_usage() -> None:
    rl, p = RateLimits(), key(tokens_per_minute=1000)
    rl.charge_tokens(p, 800, 0.0)
    with pytest.raises(RateLimited, match="estimated at 300") as caught:
        rl.charge_tokens(p, 300, 0.0)
    assert caught.value.retry_after_s == pytest.approx(6.0)  # 100 tokens at 1000/60 a second
    rl.settle_tokens(p, charged=800, used=100, now=0.0)  # it used far less
    rl.charge_tokens(p, 300, 0.0)
    rl.charge_tokens(p, 5000, 60.0)  # larger than a minute: waits for a full bucket, takes it


def test_openai_rate_limit_headers() -> None:
    rl, p = RateLimits(), key(requests_per_minute=10, tokens_per_minute=600)
    rl.admit(p, 0.0)
    rl.charge_tokens(p, 90, 0.0)
    headers = dict(rl.headers(p, 0.0))
    assert headers[b"x-ratelimit-limit-requests"] == b"10"
    assert headers[b"x-ratelimit-remaining-requests"] == b"9"
    assert headers[b"x-ratelimit-reset-requests"] == b"6s"
    assert headers[b"x-ratelimit-remaining-tokens"] == b"510"
    assert headers[b"x-ratelimit-reset-tokens"] == b"9s"
    assert rl.headers(Principal("k2", Role.USER), 0.0) == []


def test_bad_credentials_are_limited_per_address() -> None:
    failed = FailedAttempts(per_minute=3)
    assert [failed.note("10.0.0.1", 0.0) for _ in range(3)] == [None, None, None]
    wait = failed.note("10.0.0.1", 0.0)
    assert wait == pytest.approx(20.0)
    assert failed.note("10.0.0.2", 0.0) is None  # another address is not held back
    assert failed.note("10.0.0.1", 20.0) is None


def test_a_request_larger_than_the_bucket_cannot_refill_it_by_settling() -> None:
    rl, p = RateLimits(), key(tokens_per_minute=1000)
    taken = rl.charge_tokens(p, 10**9, 0.0)
    assert taken == 1000  # a minute's worth, all there is
    rl.settle_tokens(p, charged=taken, used=50_000, now=0.0)
    with pytest.raises(RateLimited):  # it used far more than it took: the bucket is empty
        rl.charge_tokens(p, 1, 0.0)


def test_the_failure_limiter_keeps_a_bounded_number_of_addresses() -> None:
    failed = FailedAttempts(per_minute=1, most=3)
    for address in ("a", "b", "c"):
        failed.note(address, 0.0)
    assert failed.note("a", 0.0) is not None  # a is over; touching it makes it recent
    failed.note("d", 0.0)  # b, the least recently failed, is forgotten
    assert failed.note("b", 0.0) is None
    assert failed.note("a", 0.0) is not None


def test_a_refund_gives_back_the_request_and_the_slot() -> None:
    rl, p = RateLimits(), key(requests_per_minute=1, concurrent_requests=1)
    rl.admit(p, 0.0)
    rl.refund(p, 0.0)  # refused after all, by the cluster's count
    rl.admit(p, 0.0)  # neither the minute's request nor the slot was spent
