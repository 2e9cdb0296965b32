"""The per-backend circuit breaker: closed, open, half-open and back."""

from __future__ import annotations

from moc.dispatch.breaker import Breaker, BreakerState


def opened(failures_to_open: int = 3, open_s: float = 10.0, at: float = 100.0) -> Breaker:
    b = Breaker(failures_to_open, open_s)
    for _ in range(failures_to_open):
        b.failure(at)
    assert b.state is BreakerState.OPEN
    return b


def test_state_values_are_the_gauge_values() -> None:
    assert [s.value for s in BreakerState] == [0, 1, 2]
    assert [s.name for s in BreakerState] == ["CLOSED", "OPEN", "HALF_OPEN"]


def test_closed_lets_everything_through() -> None:
    b = Breaker(3, 10.0)
    assert b.state is BreakerState.CLOSED
    assert all(b.allow(float(t)) for t in range(5))
    assert b.failures == 0


def test_opens_after_n_consecutive_failures() -> None:
    b = Breaker(3, 10.0)
    b.failure(1.0)
    b.failure(2.0)
    assert b.state is BreakerState.CLOSED
    assert b.allow(2.0)
    b.failure(3.0)
    assert b.state is BreakerState.OPEN
    assert b.opened_at == 3.0
    assert b.failures == 3
    assert not b.allow(3.0)


def test_one_failure_opens_when_n_is_one() -> None:
    b = Breaker(1, 5.0)
    b.failure(7.0)
    assert b.state is BreakerState.OPEN
    assert not b.allow(7.0)


def test_a_success_resets_the_failure_count() -> None:
    b = Breaker(3, 10.0)
    b.failure(1.0)
    b.failure(2.0)
    b.success()
    assert b.failures == 0
    b.failure(3.0)
    b.failure(4.0)
    assert b.state is BreakerState.CLOSED  # only two in a row since the success
    b.failure(5.0)
    assert b.state is BreakerState.OPEN


def test_open_refuses_until_open_s_has_passed() -> None:
    b = opened(open_s=10.0, at=100.0)
    assert not b.allow(100.0)
    assert not b.allow(109.999)
    assert b.state is BreakerState.OPEN
    assert b.allow(110.0)
    assert b.state is BreakerState.HALF_OPEN


def test_retry_after_counts_down_to_zero() -> None:
    b = opened(open_s=10.0, at=100.0)
    assert b.retry_after(100.0) == 10.0
    assert b.retry_after(104.0) == 6.0
    assert b.retry_after(110.0) == 0.0
    assert b.retry_after(500.0) == 0.0  # never negative


def test_half_open_lets_exactly_one_probe_through() -> None:
    b = opened(open_s=10.0, at=100.0)
    assert b.allow(111.0)
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow(111.0)
    assert not b.allow(150.0)
    assert b.state is BreakerState.HALF_OPEN
    assert b.retry_after(150.0) == 0.0  # the wait is over; only the probe is in the way


def test_probe_success_closes() -> None:
    b = opened(open_s=10.0, at=100.0)
    assert b.allow(110.0)
    b.success()
    assert b.state is BreakerState.CLOSED
    assert b.failures == 0
    assert b.allow(110.0)
    assert b.allow(110.0)
    # and it takes the full count of failures to open again
    b.failure(111.0)
    b.failure(112.0)
    assert b.state is BreakerState.CLOSED


def test_probe_failure_reopens_with_a_new_opened_at() -> None:
    b = opened(open_s=10.0, at=100.0)
    assert b.allow(115.0)
    b.failure(116.0)
    assert b.state is BreakerState.OPEN
    assert b.opened_at == 116.0
    assert b.retry_after(116.0) == 10.0
    assert not b.allow(125.0)  # 10 s after the first opening, but not after the second
    assert b.allow(126.0)  # a new probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow(126.0)


def test_a_single_probe_failure_reopens_even_with_a_high_threshold() -> None:
    b = opened(failures_to_open=5, open_s=1.0, at=0.0)
    b.success()  # closed, count reset
    for t in range(5):
        b.failure(float(t))
    assert b.allow(5.0)  # half-open probe
    b.failure(5.0)
    assert b.state is BreakerState.OPEN
    assert b.opened_at == 5.0


def test_abandon_frees_the_probe_slot() -> None:
    b = opened(open_s=10.0, at=100.0)
    assert b.allow(110.0)
    assert not b.allow(110.0)
    b.abandon()
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow(111.0)  # another probe may go
    assert not b.allow(111.0)
    b.success()
    assert b.state is BreakerState.CLOSED
