"""The states a model's runtime goes through, and which moves are allowed.

::

    stopped ──► starting ──► ready ──► stopping ──► stopped
                  │  ▲         │
                  │  │         ▼ (crashed)
                  │  └──── backoff ──► degraded (too many failures in a row)
                  ▼
                failed (a load that did not become ready; the next load retries)

``degraded`` is left only by an operator's explicit load (or an unload).
The table is the whole truth: :func:`check` refuses any move not in it.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    FAILED = "failed"
    DEGRADED = "degraded"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.STOPPED: frozenset({S.STARTING}),
    S.STARTING: frozenset({S.READY, S.STOPPING, S.FAILED, S.BACKOFF, S.DEGRADED}),
    S.READY: frozenset({S.STOPPING, S.BACKOFF, S.DEGRADED}),
    S.STOPPING: frozenset({S.STOPPED}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPING, S.DEGRADED}),
    S.FAILED: frozenset({S.STARTING, S.STOPPED}),
    S.DEGRADED: frozenset({S.STARTING, S.STOPPED}),
}

# States in which the model holds a reservation in the ledger.
HOLDS_MEMORY = frozenset({S.STARTING, S.READY, S.STOPPING, S.BACKOFF})


class InvalidTransition(RuntimeError):
    def __init__(self, old: State, new: State) -> None:
        super().__init__(f"a runtime cannot go from {old} to {new}")
        self.old, self.new = old, new


def check(old: State, new: State) -> None:
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(old, new)


def backoff_delay(failures: int, base_s: float, max_s: float) -> float:
    """Delay before restart number ``failures`` (1-based): base, 2×base, 4×base … max."""
    return float(min(max_s, base_s * 2 ** max(0, failures - 1)))
