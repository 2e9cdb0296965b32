"""A goal as ``/v1/goals`` answers it."""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict

from moc.wire.shape import closed

# moc.learning.goals.model.GoalStatus, as sent.
GoalStatus = Literal["active", "paused", "done"]


@closed
class Goal(TypedDict):
    """A named weight that learning jobs may name: active goals share job starts by it."""

    name: str
    """the goal's name, its handle in /v1/goals/{name}"""
    weight: float
    """greater than 0, at most 1000; under the fair policy starts are shared in proportion to it"""
    description: str
    """what the goal is for, as given ("" if none)"""
    status: GoalStatus
    """active: its jobs take turns; paused: they wait and running ones yield; done: they wait"""
    created_at: str
    """UTC, ISO 8601 with milliseconds"""
    updated_at: str
    """when it was last changed (UTC, ISO 8601 with milliseconds)"""


@closed
class GoalList(TypedDict):
    """Every goal, oldest first."""

    goals: list[Goal]


@closed
class GoalDeleted(TypedDict):
    """The answer to a delete: the goal as it was."""

    deleted: Literal[True]
    goal: Goal
