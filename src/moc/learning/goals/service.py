"""The goal service: the owner of the table of goals.

The table lives in memory, loaded from the store when the service is built,
and every change runs check → persist → apply with no ``await`` anywhere
(the methods are synchronous, called on the event loop's thread), so two
requests cannot both take the last active slot or the same name, and a
failed write changes nothing.

``on_change(old, new)`` is called after each change is stored and applied:
``(None, goal)`` for a goal created, ``(goal, None)`` for one deleted, and
``(before, after)`` for an update that changed something. That is how the
learning runner hears that a goal was paused (it then asks that goal's
running jobs to yield), resumed, reweighted or removed. The callback runs
synchronously inside the request, so it must be quick and must not raise;
anything slow it schedules as a task of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from moc.clock import Clock
from moc.config import GoalsConfig
from moc.errors import GoalExists, GoalNotFound, TooManyActiveGoals
from moc.learning.goals.model import Goal, GoalChange, GoalStatus, NewGoal
from moc.learning.goals.policy import GoalWeight
from moc.learning.goals.store import GoalStore
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

OnChange = Callable[[Goal | None, Goal | None], None]


def _unheard(old: Goal | None, new: Goal | None) -> None:
    """No one listens yet (the daemon without a learning runner)."""


class GoalService:
    def __init__(
        self,
        store: GoalStore,
        config: GoalsConfig,
        clock: Clock,
        on_change: OnChange = _unheard,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._listeners: list[OnChange] = [on_change]
        # name → goal, in creation order. Owned here; read and written only by
        # the synchronous methods below.
        self._goals: dict[str, Goal] = {g.name: g for g in store.load()}

    def listen(self, on_change: OnChange) -> None:
        """Also call ``on_change`` after each change (for a part built after this one)."""
        self._listeners.append(on_change)

    def create(self, new: NewGoal) -> Goal:
        if new.name in self._goals:
            raise GoalExists(
                f"a goal named {new.name!r} exists; change it with PATCH /v1/goals/{new.name}",
                name=new.name,
            )
        if new.status is GoalStatus.ACTIVE:
            self._check_room(new.name)
        goal = new.at(self._clock.now())
        self._store.insert(goal)
        self._goals[goal.name] = goal
        event(log, logging.INFO, "goal created", goal=goal.name, weight=goal.weight)
        self._tell(None, goal)
        return goal

    def get(self, name: str) -> Goal:
        goal = self._goals.get(name)
        if goal is None:
            known = ", ".join(self._goals) or "none"
            raise GoalNotFound(f"no goal named {name!r} (goals: {known})", name=name)
        return goal

    def list(self) -> list[Goal]:
        """Every goal, oldest first."""
        return list(self._goals.values())

    def update(self, name: str, change: GoalChange) -> Goal:
        old = self.get(name)
        goal = change.applied(old, self._clock.now())
        if goal == old:
            return old
        if goal.active and not old.active:
            self._check_room(name)
        self._store.update(goal)
        self._goals[name] = goal
        event(
            log,
            logging.INFO,
            "goal changed",
            goal=name,
            weight=goal.weight,
            status=goal.status.value,
        )
        self._tell(old, goal)
        return goal

    def delete(self, name: str) -> Goal:
        """Remove the goal; returns it as it was."""
        old = self.get(name)
        self._store.delete(name)
        del self._goals[name]
        event(log, logging.INFO, "goal deleted", goal=name)
        self._tell(old, None)
        return old

    def adopt(self, goals: Sequence[Goal]) -> None:
        """Make this table ``goals``, as the cluster has them (another node
        changed them): each difference is stored and told like a change made
        here. No limit is checked: the node that made the change did."""
        wanted = {g.name: g for g in goals}
        for name in [n for n in self._goals if n not in wanted]:
            gone = self._goals.pop(name)
            self._store.delete(name)
            self._tell(gone, None)
        for goal in goals:
            old = self._goals.get(goal.name)
            if old == goal:
                continue
            (self._store.insert if old is None else self._store.update)(goal)
            self._goals[goal.name] = goal
            event(log, logging.INFO, "goal taken from the cluster", goal=goal.name,
                  weight=goal.weight, status=goal.status.value)  # fmt: skip
            self._tell(old, goal)

    def weights(self) -> dict[str, GoalWeight]:
        """What the learning queue's policy needs of every goal, a snapshot."""
        return {g.name: GoalWeight(g.weight, g.active) for g in self._goals.values()}

    def active_count(self) -> int:
        return sum(1 for g in self._goals.values() if g.active)

    def _check_room(self, name: str) -> None:
        limit = self._config.max_active_goals
        active = self.active_count()
        if active >= limit:
            raise TooManyActiveGoals(
                f"goal {name!r} cannot be active: goals.max_active_goals is {limit} and "
                f"{active} goals are active; pause or finish one first, or create this one "
                "with status paused",
                limit=limit,
                active=active,
                name=name,
            )

    def _tell(self, old: Goal | None, new: Goal | None) -> None:
        for listener in self._listeners:
            listener(old, new)
