"""Goals as values: a goal, its status, and the validated requests that make
and change one.

A goal is a named weight that learning jobs may name: the learning queue
shares job starts among active goals by it (:mod:`moc.learning.goals.policy`).
The transports turn wire input into a :class:`NewGoal` or a
:class:`GoalChange` with :func:`new_goal` and :func:`goal_change`, which hold
every range check; nothing deeper sees raw values.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from moc.errors import InvalidRequest

# A goal's name is the last segment of its URL (/v1/goals/{name}), so it keeps
# to characters a path takes as they are. The pattern is ECMA's and Python's
# alike (the OpenAPI document states it); it is matched whole.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MAX_NAME = 64
WEIGHT_MAX = 1000.0  # weights compare as ratios: 1000:1 is ample range
MAX_DESCRIPTION = 1000
_NAME = re.compile(NAME_PATTERN.removeprefix("^").removesuffix("$"))


class GoalStatus(StrEnum):
    ACTIVE = "active"  # its jobs take turns in the learning queue
    PAUSED = "paused"  # its jobs wait (running ones are asked to yield); resumable
    DONE = "done"  # finished with; its jobs wait like a paused goal's


@dataclass(frozen=True)
class Goal:
    """A goal as stored: ``created_at`` and ``updated_at`` in clock seconds."""

    name: str
    weight: float
    description: str
    status: GoalStatus
    created_at: float
    updated_at: float

    @property
    def active(self) -> bool:
        return self.status is GoalStatus.ACTIVE

    def record(self) -> dict[str, Any]:
        """As a JSON document (how a cluster shares it)."""
        return {**dataclasses.asdict(self), "status": self.status.value}

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> Goal:
        """Checked as a create request is (InvalidRequest, else KeyError)."""
        made = new_goal(
            name=doc["name"], weight=doc["weight"], description=doc["description"],
            status=doc["status"],
        )  # fmt: skip
        return dataclasses.replace(
            made.at(float(doc["created_at"])), updated_at=float(doc["updated_at"])
        )


@dataclass(frozen=True)
class NewGoal:
    """A create request that passed validation."""

    name: str
    weight: float
    description: str = ""
    status: GoalStatus = GoalStatus.ACTIVE

    def at(self, now: float) -> Goal:
        return Goal(self.name, self.weight, self.description, self.status, now, now)


@dataclass(frozen=True)
class GoalChange:
    """An update request that passed validation; None leaves a field as it is."""

    weight: float | None = None
    description: str | None = None
    status: GoalStatus | None = None

    def applied(self, goal: Goal, now: float) -> Goal:
        """``goal`` with the change made; unchanged (same ``updated_at``) when
        the change sets every field to the value it has."""
        changes: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None and getattr(self, f.name) != getattr(goal, f.name)
        }
        if not changes:
            return goal
        return dataclasses.replace(goal, **changes, updated_at=now)


def new_goal(*, name: Any, weight: Any, description: Any = None, status: Any = None) -> NewGoal:
    """A create request from wire values; None means not given."""
    if weight is None:
        raise InvalidRequest("weight", "is required")
    return NewGoal(
        name=_name(name),
        weight=_weight(weight),
        description="" if description is None else _description(description),
        status=GoalStatus.ACTIVE if status is None else _status(status),
    )


def goal_change(*, weight: Any = None, description: Any = None, status: Any = None) -> GoalChange:
    """An update request from wire values; None means leave as it is."""
    return GoalChange(
        weight=None if weight is None else _weight(weight),
        description=None if description is None else _description(description),
        status=None if status is None else _status(status),
    )


def _name(value: Any) -> str:
    if value is None:
        raise InvalidRequest("name", "is required")
    if not isinstance(value, str):
        raise InvalidRequest("name", "must be a string", value=value)
    if not 1 <= len(value) <= MAX_NAME:
        raise InvalidRequest(
            "name", f"must be 1 to {MAX_NAME} characters", value=value, limit=MAX_NAME
        )
    if _NAME.fullmatch(value) is None:
        raise InvalidRequest(
            "name",
            "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'",
            value=value,
            limit=NAME_PATTERN,
        )
    return value


def _weight(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest("weight", "must be a number", value=value)
    if not 0 < value <= WEIGHT_MAX:  # NaN fails it too
        raise InvalidRequest(
            "weight",
            f"must be greater than 0 and at most {WEIGHT_MAX:g}",
            value=value,
            limit=WEIGHT_MAX,
        )
    return float(value)


def _description(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest("description", "must be a string", value=value)
    if len(value) > MAX_DESCRIPTION:
        raise InvalidRequest(
            "description",
            f"must be at most {MAX_DESCRIPTION} characters",
            value=f"{len(value)} characters",
            limit=MAX_DESCRIPTION,
        )
    return value


def _status(value: Any) -> GoalStatus:
    allowed = "|".join(s.value for s in GoalStatus)
    try:
        return GoalStatus(value)
    except (ValueError, TypeError):
        raise InvalidRequest(
            "status", f"must be one of {allowed}", value=value, limit=allowed
        ) from None
