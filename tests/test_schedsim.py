"""The scheduling simulator (benchmarks/schedsim): properties that hold for
every policy on small seeded traces, so its tables can be trusted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from benchmarks.schedsim.baselines import capacity, lru, min_loads, ollama_like
from benchmarks.schedsim.moc_policy import MocSim
from benchmarks.schedsim.trace import Request, Trace, bursts, models, zipf
from benchmarks.schedsim.world import Result
from moc.scheduler.waiting import Priority

POLICIES: dict[str, Callable[[Trace], Result]] = {
    "moc": lambda t: MocSim(t).run(),
    "ollama-like": ollama_like,
    "lru": lru,
}
SMALL = [
    zipf(7, duration_s=300.0, high_share=0.1),
    bursts(7, duration_s=300.0),
]


@pytest.mark.parametrize("trace", SMALL, ids=lambda t: t.name)
@pytest.mark.parametrize("policy", POLICIES)
def test_no_budget_violation_and_every_request_answered_once(trace: Trace, policy: str) -> None:
    result = POLICIES[policy](trace)
    assert result.violations == 0
    assert 0 < result.peak_held <= trace.budget
    assert result.answered == len(trace.requests)  # the recorder refuses a second answer
    assert result.loads > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_requests_past_their_timeout_are_counted_not_lost(policy: str) -> None:
    trace = replace(zipf(3, rate=2.0, duration_s=200.0), timeout_s=(3.0, 3.0, 3.0))
    result = POLICIES[policy](trace)
    timed_out = sum(result.timed_out.values())
    assert timed_out > 0  # the trace is heavy enough for 3 s to run out
    assert result.served + timed_out + result.failed == len(trace.requests)
    if policy != "moc":  # moc's deadline ends the queue wait; a load after it does not expire
        assert all(w <= 3.0 + 1e-9 for ws in result.waits.values() for w in ws)


@pytest.mark.parametrize("trace", SMALL, ids=lambda t: t.name)
@pytest.mark.parametrize("policy", POLICIES)
def test_min_over_a_policys_own_start_order_bounds_its_loads(trace: Trace, policy: str) -> None:
    result = POLICIES[policy](trace)
    assert len(result.start_order) == result.served
    assert min_loads(result.start_order, capacity(trace)) <= result.loads


def test_min_over_arrival_order_bounds_a_policy_that_keeps_that_order() -> None:
    # arrivals 30 s apart: each request ends before the next arrives, so LRU
    # starts them in arrival order
    base = zipf(5, duration_s=600.0)
    spaced = tuple(replace(r, arrival=30.0 * i) for i, r in enumerate(base.requests[:60]))
    trace = replace(base, requests=spaced)
    result = lru(trace)
    assert result.start_order == [r.model for r in spaced]
    assert min_loads(result.start_order, 3) <= result.loads


def test_min_matches_beladys_textbook_example() -> None:
    # 7 0 1 2 0 3 0 4 2 3 0 3 2 1 2 0 1 7 0 1 with 3 frames: 9 faults under OPT
    order = [str(x) for x in (7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1)]
    assert min_loads(order, 3) == 9
    assert min_loads(order, 20) == len(set(order))


@pytest.mark.parametrize("policy", POLICIES)
def test_a_trace_with_one_model_loads_it_once(policy: str) -> None:
    (m,) = models(1)
    requests = tuple(
        Request(i, 0.7 * i, m.name, Priority.HIGH if i % 5 == 0 else Priority.NORMAL, 1.0)
        for i in range(100)
    )
    trace = Trace("one", "one model", (m,), m.bytes, requests)
    result = POLICIES[policy](trace)
    assert result.loads == 1
    assert result.served == 100


def test_replays_are_reproducible() -> None:
    trace = zipf(11, duration_s=200.0)
    assert zipf(11, duration_s=200.0) == trace
    first, second = MocSim(trace).run(), MocSim(trace).run()
    assert (first.loads, first.start_order) == (second.loads, second.start_order)
    assert ollama_like(trace, seed=2).start_order == ollama_like(trace, seed=2).start_order
