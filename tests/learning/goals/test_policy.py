"""The learning queue's turn-taking among goals, without an event loop: the
issue's proof (weights 3 and 1 get starts 3:1 under ``fair``), the other two
policies' orders, and properties over random weights and queues."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moc.learning.goals.policy import (
    BIG,
    DEFAULT_GOAL,
    Candidate,
    GoalTurns,
    GoalWeight,
    Policy,
    goal_key,
)


class Queue:
    """Queued candidates, started one at a time as a runner would start them."""

    def __init__(self) -> None:
        self.waiting: list[Candidate] = []
        self._seq = itertools.count()

    def add(self, goal: str | None, n: int = 1, priority: int = 0) -> list[Candidate]:
        made = [
            Candidate(f"{goal}-{s}", goal, priority, s) for s in (next(self._seq) for _ in range(n))
        ]
        self.waiting += made
        return made

    def run(
        self, turns: GoalTurns, goals: Mapping[str, GoalWeight], starts: int
    ) -> list[Candidate]:
        order = []
        for _ in range(starts):
            picked = turns.pick(self.waiting, goals)
            if picked is None:
                break
            turns.started(picked)
            self.waiting.remove(picked)
            order.append(picked)
        return order


def _goals(**weights: float) -> dict[str, GoalWeight]:
    return {name: GoalWeight(w) for name, w in weights.items()}


def test_fair_shares_starts_three_to_one_for_weights_three_and_one() -> None:
    queue = Queue()
    queue.add("a", 500)
    queue.add("b", 500)
    order = queue.run(GoalTurns("fair"), _goals(a=3, b=1), 400)
    counts = Counter(c.goal for c in order)
    assert counts["a"] + counts["b"] == 400
    assert counts["a"] / counts["b"] == pytest.approx(3.0, rel=0.10)
    # Stride scheduling is tighter than ±10 %: within one start at every point.
    for n in range(1, len(order) + 1):
        a = sum(1 for c in order[:n] if c.goal == "a")
        assert abs(a - 0.75 * n) <= 1, (n, a)


def test_priority_queue_starts_the_heaviest_goals_jobs_first() -> None:
    queue = Queue()
    queue.add("light", 3)
    queue.add("heavy", 3)
    queue.add(None, 2)
    order = queue.run(GoalTurns("priority_queue"), _goals(light=0.5, heavy=5), 10)
    # heavy (5), then the default goal (1), then light (0.5); FIFO within each.
    assert [c.job_id for c in order] == [
        "heavy-3",
        "heavy-4",
        "heavy-5",
        "None-6",
        "None-7",
        "light-0",
        "light-1",
        "light-2",
    ]


def test_round_robin_takes_goals_in_turn_whatever_their_weights() -> None:
    queue = Queue()
    queue.add("a", 3)
    queue.add("b", 3)
    queue.add("c", 1)
    order = queue.run(GoalTurns("round_robin"), _goals(a=100, b=1, c=7), 10)
    assert [c.goal for c in order] == ["a", "b", "c", "a", "b", "a", "b"]


@pytest.mark.parametrize("policy", ["fair", "priority_queue", "round_robin"])
def test_within_a_goal_higher_priority_first_then_first_queued(policy: Policy) -> None:
    queue = Queue()
    queue.add("g", 2, priority=10)
    queue.add("g", 2, priority=90)
    queue.add("g", 1, priority=10)
    order = queue.run(GoalTurns(policy), _goals(g=1), 10)
    assert [c.job_id for c in order] == ["g-2", "g-3", "g-0", "g-1", "g-4"]


@pytest.mark.parametrize("policy", ["fair", "priority_queue", "round_robin"])
def test_only_active_goals_and_goalless_jobs_are_picked(policy: Policy) -> None:
    queue = Queue()
    queue.add("paused", 5)
    queue.add("gone", 5)  # a goal no longer in the mapping
    queue.add(None, 2)
    goals = {"paused": GoalWeight(1000, active=False)}
    order = queue.run(GoalTurns(policy), goals, 10)
    assert [c.goal for c in order] == [None, None]
    assert GoalTurns(policy).pick(queue.waiting, goals) is None


def test_jobs_with_no_goal_share_as_one_goal_of_weight_one() -> None:
    queue = Queue()
    queue.add(None, 300)
    queue.add("two", 300)
    order = queue.run(GoalTurns("fair"), _goals(two=2), 300)
    counts = Counter(c.goal for c in order)
    assert (counts[None], counts["two"]) == (100, 200)


def test_an_idle_goal_rejoins_at_the_minimum_pass_and_banks_no_credit() -> None:
    queue = Queue()
    turns = GoalTurns("fair")
    goals = _goals(a=1, b=1)
    queue.add("a", 200)
    assert {c.goal for c in queue.run(turns, goals, 100)} == {"a"}  # b had nothing queued
    queue.add("b", 200)
    order = queue.run(turns, goals, 20)
    # Equal weights alternate from here; b is not owed the 100 starts a had alone.
    assert Counter(c.goal for c in order) == {"a": 10, "b": 10}
    assert all(order[i].goal != order[i + 1].goal for i in range(19))


def test_pausing_and_resuming_gains_nothing() -> None:
    queue = Queue()
    turns = GoalTurns("fair")
    queue.add("a", 100)
    queue.add("b", 100)
    queue.run(turns, _goals(a=1, b=1), 10)
    paused = {"a": GoalWeight(1), "b": GoalWeight(1, active=False)}
    queue.run(turns, paused, 10)  # a alone
    # b comes back at the pass of the last start, one stride behind a, not
    # ten: the starts it missed while paused are not owed to it.
    assert turns.pass_of("b") == turns.pass_of("a") - BIG
    order = queue.run(turns, _goals(a=1, b=1), 20)
    assert Counter(c.goal for c in order) == {"a": 10, "b": 10}


def test_a_weight_as_small_as_a_float_allows_does_not_overflow() -> None:
    queue = Queue()
    queue.add("tiny", 3)
    queue.add("big", 3)
    order = queue.run(GoalTurns("fair"), _goals(tiny=5e-324, big=1000), 6)
    # tiny's one start puts it past every pass big reaches with three jobs.
    assert [c.goal for c in order].count("tiny") == 3
    assert [c.goal for c in order][1:4] == ["big", "big", "big"]


def test_a_deleted_goal_made_again_starts_afresh() -> None:
    queue = Queue()
    turns = GoalTurns("fair")
    queue.add("a", 10)
    queue.run(turns, _goals(a=1), 5)
    turns.forget("a")
    assert turns.pass_of("a") == turns.pass_of("never-seen")


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="fair, priority_queue, round_robin"):
        GoalTurns("lottery")  # type: ignore[arg-type]


weights = st.floats(min_value=0.01, max_value=1000, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(ws=st.lists(weights, min_size=1, max_size=6), starts=st.integers(1, 120))
def test_fair_shares_stay_within_one_start_per_goal_of_the_weights(
    ws: list[float], starts: int
) -> None:
    goals = {f"g{i}": GoalWeight(w) for i, w in enumerate(ws)}
    queue = Queue()
    for name in goals:
        queue.add(name, starts)
    order = queue.run(GoalTurns("fair"), goals, starts)
    counts = Counter(c.goal for c in order)
    total = sum(ws)
    for name, goal in goals.items():
        assert abs(counts[name] - starts * goal.weight / total) <= len(goals), (name, counts)


goal_names = st.sampled_from(["a", "b", "c", None])


@settings(max_examples=300, deadline=None)
@given(
    policy=st.sampled_from(["fair", "priority_queue", "round_robin"]),
    jobs=st.lists(st.tuples(goal_names, st.integers(0, 3)), max_size=30),
    active=st.fixed_dictionaries({k: st.booleans() for k in "abc"}),
    goal_weights=st.fixed_dictionaries(dict.fromkeys("abc", weights)),
)
def test_a_pick_is_always_the_best_pickable_job_of_its_goal(
    policy: Policy,
    jobs: list[tuple[str | None, int]],
    active: dict[str, bool],
    goal_weights: dict[str, float],
) -> None:
    goals = {k: GoalWeight(goal_weights[k], active[k]) for k in "abc"}
    candidates = [Candidate(f"j{i}", g, p, i) for i, (g, p) in enumerate(jobs)]
    turns = GoalTurns(policy)
    waiting = list(candidates)
    while True:
        picked = turns.pick(waiting, goals)
        pickable = [c for c in waiting if c.goal is None or goals[c.goal].active]
        if picked is None:
            assert pickable == []
            break
        assert picked in pickable
        same = [c for c in pickable if goal_key(c) == goal_key(picked)]
        assert (picked.priority, -picked.seq) == max((c.priority, -c.seq) for c in same)
        turns.started(picked)
        waiting.remove(picked)
    assert all(c.goal is not None and not goals[c.goal].active for c in waiting)
    assert DEFAULT_GOAL == ""
