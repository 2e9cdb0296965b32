"""The runtime state machine's transition table, whole."""

from __future__ import annotations

import itertools

import pytest

from moc.backends.state import TRANSITIONS, InvalidTransition, State, backoff_delay, check

ALLOWED = {
    ("stopped", "starting"),
    ("starting", "ready"),
    ("starting", "stopping"),
    ("starting", "failed"),
    ("starting", "backoff"),
    ("starting", "degraded"),
    ("ready", "stopping"),
    ("ready", "backoff"),
    ("ready", "degraded"),
    ("stopping", "stopped"),
    ("backoff", "starting"),
    ("backoff", "stopping"),
    ("backoff", "degraded"),
    ("failed", "starting"),
    ("failed", "stopped"),
    ("degraded", "starting"),
    ("degraded", "stopped"),
}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(State, State)))
def test_every_pair_is_allowed_exactly_when_the_table_says(old: State, new: State) -> None:
    if (old.value, new.value) in ALLOWED:
        check(old, new)
    else:
        with pytest.raises(InvalidTransition, match=f"from {old} to {new}"):
            check(old, new)


def test_every_state_can_be_left() -> None:
    assert all(TRANSITIONS[s] for s in State)


def test_ready_is_reached_only_through_starting() -> None:
    assert [s for s in State if State.READY in TRANSITIONS[s]] == [State.STARTING]


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
