"""What ``ensure_loaded`` does next, for every state a model can be in."""

from __future__ import annotations

import pytest

from moc.backends.state import State
from moc.lifecycle.steps import Step, next_step


@pytest.mark.parametrize(
    ("state", "loading", "explicit", "expected"),
    [
        (State.READY, False, False, Step.SERVE),
        (State.READY, True, False, Step.SERVE),  # ready wins over a load in flight
        (State.STOPPED, False, False, Step.LOAD),
        (State.STOPPED, True, False, Step.JOIN),
        (State.FAILED, False, False, Step.LOAD),  # the next load retries
        (State.STARTING, False, False, Step.WAIT),
        (State.STOPPING, False, False, Step.WAIT),
        (State.BACKOFF, False, False, Step.WAIT),
        (State.STARTING, True, False, Step.JOIN),
        (State.DEGRADED, False, False, Step.REFUSE),
        (State.DEGRADED, False, True, Step.LOAD),  # an operator's load restarts it
    ],
)
def test_next_step(state: State, loading: bool, explicit: bool, expected: Step) -> None:
    assert next_step(state, loading=loading, explicit=explicit, closing=False) is expected


@pytest.mark.parametrize("state", list(State))
def test_nothing_is_loaded_or_served_while_moc_shuts_down(state: State) -> None:
    assert next_step(state, loading=False, explicit=True, closing=True) is Step.CLOSED
