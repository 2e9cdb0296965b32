"""What a caller of ``ensure_loaded`` does next for a model, given its slot now.
Pure: the loader asks this in a loop, acting on each answer and asking again
after every wait.
"""

from __future__ import annotations

from enum import StrEnum

from moc.backends.state import State


class Step(StrEnum):
    CLOSED = "closed"  # moc is shutting down: fail
    SERVE = "serve"  # ready: hand it out
    JOIN = "join"  # a load is under way: wait for it, shared
    WAIT = "wait"  # the runtime is on its way somewhere: wait for its next state
    REFUSE = "refuse"  # degraded: only an operator's explicit load restarts it
    LOAD = "load"  # start a load


MOVING = frozenset({State.STOPPING, State.STARTING, State.BACKOFF})


def next_step(state: State, *, loading: bool, explicit: bool, closing: bool) -> Step:
    """``loading``: a load task exists; ``explicit``: an operator's load."""
    if closing:
        return Step.CLOSED
    if state is State.READY:
        return Step.SERVE
    if loading:
        return Step.JOIN
    if state in MOVING:
        return Step.WAIT
    if state is State.DEGRADED and not explicit:
        return Step.REFUSE
    return Step.LOAD
