"""Which queued learning job starts next: goals take turns by their weights.

Pure: no I/O, no clock, no asyncio. :class:`GoalTurns` holds the little
history a policy needs (how far each goal has been served) and is owned by
the learning runner, which calls it from one task:

1. ``pick(candidates, goals)`` says which candidate would start now; it
   changes no turn (it only remembers ``goals`` for ``started``), so the
   runner may ask and then find the job does not fit in memory yet;
2. ``started(candidate)`` records that it did start.

Rules, in the order they apply:

- Only a candidate whose goal is active may be picked. A candidate with no
  goal belongs to the *default goal*, which is always active and has weight
  ``DEFAULT_WEIGHT`` (1): jobs that name no goal share the queue with the
  named goals as one goal of weight 1. A candidate naming a goal missing from
  ``goals`` (deleted) is not picked; the runner decides what becomes of it.
- One goal is chosen among the goals with a pickable candidate, by the policy:

  - ``fair`` (the default): job starts are shared in proportion to weight, by
    stride scheduling. Each goal has a *pass*, advanced by its *stride*
    ``BIG / weight`` on each start; the goal with the lowest pass goes next.
    A goal that had no pickable candidate (idle, paused, new) rejoins at the
    current minimum pass, the pass of the last start, so it cannot bank
    credit while it waits; a goal that is ahead keeps its pass, so pausing
    and resuming gains nothing. Passes are exact fractions: a weight as
    small as a float allows gives a huge stride, never an overflow.
  - ``priority_queue``: the goal of highest weight first, always.
  - ``round_robin``: goals in turn, whatever their weights: the goal whose
    last start is oldest (or that never started) goes next.

  Ties go to the goal whose next job has the higher priority, then to the
  one whose next job was queued first, then by goal name.
- Within the chosen goal: the job of highest priority, then the one queued
  first (lowest ``seq``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Policy = Literal["fair", "priority_queue", "round_robin"]
POLICIES: tuple[Policy, ...] = ("fair", "priority_queue", "round_robin")

# The key of the default goal among the passes; a goal's name is never empty.
DEFAULT_GOAL = ""
DEFAULT_WEIGHT = 1.0
BIG = Fraction(1 << 20)


@dataclass(frozen=True)
class Candidate:
    """A queued learning job as the policy sees it. ``seq`` orders jobs by
    when they were queued (lower: earlier); ``goal`` None: the default goal."""

    job_id: str
    goal: str | None
    priority: int
    seq: int


@dataclass(frozen=True)
class GoalWeight:
    """What the policy needs of a goal."""

    weight: float
    active: bool = True


_DEFAULT = GoalWeight(DEFAULT_WEIGHT, True)


def goal_key(candidate: Candidate) -> str:
    return DEFAULT_GOAL if candidate.goal is None else candidate.goal


def _weight_of(key: str, goals: Mapping[str, GoalWeight]) -> GoalWeight | None:
    return _DEFAULT if key == DEFAULT_GOAL else goals.get(key)


def next_in_goal(candidates: Iterable[Candidate]) -> Candidate:
    """Highest priority first, then first queued."""
    return min(candidates, key=lambda c: (-c.priority, c.seq))


def heads(candidates: Sequence[Candidate], goals: Mapping[str, GoalWeight]) -> dict[str, Candidate]:
    """Each goal with a pickable candidate, and the candidate it would start."""
    found: dict[str, Candidate] = {}
    for candidate in candidates:
        key = goal_key(candidate)
        weight = _weight_of(key, goals)
        if weight is None or not weight.active:
            continue
        held = found.get(key)
        found[key] = candidate if held is None else next_in_goal((held, candidate))
    return found


class GoalTurns:
    """The learning queue's turn-taking among goals.

    Owned by the learning runner and used from its one task; every method is
    synchronous. ``pick`` reads the turns, ``started`` and ``forget`` change them.
    """

    def __init__(self, policy: Policy = "fair") -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        self.policy: Policy = policy
        self._pass: dict[str, Fraction] = {}  # fair: each goal's pass
        self._floor = Fraction(0)  # fair: the pass of the last start
        self._last_turn: dict[str, int] = {}  # round_robin: the start number of its last
        self._starts = 0
        self._weights: dict[str, GoalWeight] = {}  # as the last pick saw them

    def pick(
        self, candidates: Sequence[Candidate], goals: Mapping[str, GoalWeight]
    ) -> Candidate | None:
        """The candidate to start now, or None when no candidate may start."""
        self._weights = dict(goals)
        ready = heads(candidates, goals)
        if not ready:
            return None
        rank = self._ranking(ready, goals)
        return ready[min(ready, key=rank)]

    def started(self, candidate: Candidate, goals: Mapping[str, GoalWeight] | None = None) -> None:
        """Account for ``candidate``'s start. Its goal's weight is read from
        ``goals``, or else from those of the last ``pick``; a goal in neither
        is charged as weight 1."""
        key = goal_key(candidate)
        weight = _weight_of(key, self._weights if goals is None else goals) or _DEFAULT
        now = self.pass_of(key)
        self._floor = max(self._floor, now)
        self._pass[key] = now + BIG / Fraction(weight.weight)
        self._last_turn[key] = self._starts
        self._starts += 1

    def forget(self, goal: str) -> None:
        """Drop what is remembered of a deleted goal; if it is made again it
        starts afresh, at the current minimum pass."""
        self._pass.pop(goal, None)
        self._last_turn.pop(goal, None)

    def pass_of(self, goal: str) -> Fraction:
        """Under ``fair``, the goal's pass as the next pick would read it:
        never below the pass of the last start."""
        return max(self._pass.get(goal, self._floor), self._floor)

    def _ranking(
        self, ready: Mapping[str, Candidate], goals: Mapping[str, GoalWeight]
    ) -> Callable[[str], tuple[object, ...]]:
        def tie(key: str) -> tuple[int, int, str]:
            head = ready[key]
            return (-head.priority, head.seq, key)

        if self.policy == "fair":
            return lambda key: (self.pass_of(key), *tie(key))
        if self.policy == "priority_queue":
            return lambda key: (-(_weight_of(key, goals) or _DEFAULT).weight, *tie(key))
        return lambda key: (self._last_turn.get(key, -1), *tie(key))
