"""The goal service on a real SQLite file: create, read, update, delete, the
limit on active goals, the stable error codes, and what ``on_change`` hears."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moc.config import GoalsConfig
from moc.errors import (
    GoalExists,
    GoalNotFound,
    InvalidRequest,
    StoreUnavailable,
    TooManyActiveGoals,
)
from moc.learning.goals.model import Goal, GoalStatus, goal_change, new_goal
from moc.learning.goals.policy import GoalWeight
from moc.learning.goals.service import GoalService
from moc.learning.goals.store import GoalStore
from moc.store.sqlite import Database
from tests.store.sqlite_faults import deny_commit


class TickingClock:
    """Each reading one second after the last."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        self.t += 1.0
        return self.t


Heard = list[tuple[Goal | None, Goal | None]]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "moc.db")
    yield db
    db.close()


def _service(db: Database, heard: Heard | None = None, max_active: int = 10) -> GoalService:
    config = GoalsConfig(max_active_goals=max_active)
    if heard is None:
        return GoalService(GoalStore(db), config, TickingClock())
    return GoalService(
        GoalStore(db), config, TickingClock(), lambda old, new: heard.append((old, new))
    )


def test_create_get_list_update_delete_and_what_on_change_hears(db: Database) -> None:
    heard: Heard = []
    goals = _service(db, heard)
    made = goals.create(new_goal(name="research", weight=3, description="papers"))
    assert made == Goal("research", 3.0, "papers", GoalStatus.ACTIVE, 1001.0, 1001.0)
    other = goals.create(new_goal(name="chores", weight=1, status="paused"))
    assert goals.get("research") == made
    assert goals.list() == [made, other]
    assert goals.weights() == {
        "research": GoalWeight(3.0, True),
        "chores": GoalWeight(1.0, False),
    }

    paused = goals.update("research", goal_change(status="paused"))
    assert paused.status is GoalStatus.PAUSED
    assert (paused.created_at, paused.updated_at) == (1001.0, 1003.0)
    assert goals.update("research", goal_change(status="paused")) is paused  # no change
    reweighted = goals.update("research", goal_change(weight=0.5, description="less"))
    deleted = goals.delete("chores")

    assert heard == [
        (None, made),
        (None, other),
        (made, paused),
        (paused, reweighted),
        (other, None),
    ]
    assert deleted == other
    # A restart reads the same goals back.
    assert _service(db).list() == [reweighted]


def test_unknown_goal_is_goal_not_found_naming_the_known_ones(db: Database) -> None:
    goals = _service(db)
    goals.create(new_goal(name="a", weight=1))
    for call in (
        lambda: goals.get("nope"),
        lambda: goals.update("nope", goal_change(weight=2)),
        lambda: goals.delete("nope"),
    ):
        with pytest.raises(GoalNotFound, match=r"no goal named 'nope' \(goals: a\)") as info:
            call()
        assert info.value.code == "goal_not_found"


def test_a_duplicate_name_is_goal_exists_and_changes_nothing(db: Database) -> None:
    heard: Heard = []
    goals = _service(db, heard)
    first = goals.create(new_goal(name="a", weight=1))
    with pytest.raises(GoalExists, match="PATCH /v1/goals/a") as info:
        goals.create(new_goal(name="a", weight=5))
    assert info.value.code == "goal_exists"
    assert goals.list() == [first]
    assert len(heard) == 1


def test_max_active_goals_bounds_creates_and_resumes_naming_the_limit(db: Database) -> None:
    goals = _service(db, max_active=2)
    goals.create(new_goal(name="a", weight=1))
    goals.create(new_goal(name="b", weight=1))
    with pytest.raises(TooManyActiveGoals) as info:
        goals.create(new_goal(name="c", weight=1))
    assert "goals.max_active_goals is 2 and 2 goals are active" in info.value.message
    assert info.value.details == {"limit": 2, "active": 2, "name": "c"}
    # Paused goals do not count; resuming one is bounded the same way.
    goals.create(new_goal(name="c", weight=1, status="paused"))
    with pytest.raises(TooManyActiveGoals):
        goals.update("c", goal_change(status="active"))
    assert goals.get("c").status is GoalStatus.PAUSED
    # A change to an active goal that keeps it active is no new activation.
    goals.update("a", goal_change(weight=4))
    goals.update("b", goal_change(status="done"))
    assert goals.update("c", goal_change(status="active")).active
    assert goals.active_count() == 2


def test_a_failed_write_changes_nothing_and_tells_no_one(db: Database) -> None:
    heard: Heard = []
    goals = _service(db, heard)
    goals.create(new_goal(name="a", weight=1))
    deny_commit(db.conn)
    with pytest.raises(StoreUnavailable):
        goals.create(new_goal(name="b", weight=1))
    with pytest.raises(StoreUnavailable):
        goals.update("a", goal_change(status="paused"))
    with pytest.raises(StoreUnavailable):
        goals.delete("a")
    db.conn.set_authorizer(None)
    assert [g.name for g in goals.list()] == ["a"]
    assert goals.get("a").active
    assert len(heard) == 1


def test_a_listener_added_later_hears_the_changes_after(db: Database) -> None:
    goals = _service(db)
    goals.create(new_goal(name="a", weight=1))
    heard: Heard = []
    goals.listen(lambda old, new: heard.append((old, new)))
    goals.delete("a")
    assert [(o and o.name, n) for o, n in heard] == [("a", None)]


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"name": None, "weight": 1}, "name", "is required"),
        ({"name": "", "weight": 1}, "name", "1 to 64 characters"),
        ({"name": "x" * 65, "weight": 1}, "name", "1 to 64 characters"),
        ({"name": "-x", "weight": 1}, "name", "must start with a letter or digit"),
        ({"name": "a/b", "weight": 1}, "name", "only letters, digits"),
        ({"name": "a\n", "weight": 1}, "name", "only letters, digits"),
        ({"name": 5, "weight": 1}, "name", "must be a string"),
        ({"name": "a", "weight": None}, "weight", "is required"),
        ({"name": "a", "weight": 0}, "weight", "greater than 0 and at most 1000"),
        ({"name": "a", "weight": -1}, "weight", "greater than 0 and at most 1000"),
        ({"name": "a", "weight": 1000.5}, "weight", "greater than 0 and at most 1000"),
        ({"name": "a", "weight": 10**400}, "weight", "greater than 0 and at most 1000"),
        ({"name": "a", "weight": float("nan")}, "weight", "greater than 0 and at most 1000"),
        ({"name": "a", "weight": True}, "weight", "must be a number"),
        ({"name": "a", "weight": "3"}, "weight", "must be a number"),
        ({"name": "a", "weight": 1, "description": "d" * 1001}, "description", "at most 1000"),
        ({"name": "a", "weight": 1, "description": 3}, "description", "must be a string"),
        ({"name": "a", "weight": 1, "status": "running"}, "status", "active|paused|done"),
    ],
)
def test_bad_input_names_the_field_and_the_limit(
    fields: dict[str, object], field: str, text: str
) -> None:
    with pytest.raises(InvalidRequest, match=text) as info:
        new_goal(**fields)
    assert info.value.field == field


def test_the_edges_of_the_ranges_are_taken() -> None:
    assert new_goal(name="a" * 64, weight=1000).weight == 1000.0
    assert new_goal(name="A1._-", weight=5e-324).weight == 5e-324
    assert new_goal(name="a", weight=1, description="d" * 1000).description == "d" * 1000
    with pytest.raises(InvalidRequest, match="weight"):
        goal_change(weight=0)
    assert goal_change() == goal_change(weight=None, description=None, status=None)
