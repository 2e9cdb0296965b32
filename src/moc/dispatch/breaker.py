"""A circuit breaker per model backend. Pure: the caller passes the time.

    CLOSED (0)    requests flow; ``failures_to_open`` consecutive failures open it
    OPEN (1)      requests fail fast with circuit_open until ``open_s`` has passed
    HALF_OPEN (2) one probe request goes through; success closes, failure reopens

It opens even when the model has only one backend: failing fast for a few
seconds beats every client waiting out a timeout against a runtime that keeps
failing. The numbers are the values of the ``moc_breaker_state`` gauge.
"""

from __future__ import annotations

from enum import IntEnum


class BreakerState(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Breaker:
    def __init__(self, failures_to_open: int, open_s: float) -> None:
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probing = False

    def allow(self, now: float) -> bool:
        """May a request go to the backend now? In half-open, only one at a time."""
        if self.state is BreakerState.OPEN and now - self.opened_at >= self.open_s:
            self.state = BreakerState.HALF_OPEN
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def retry_after(self, now: float) -> float:
        return max(0.0, self.opened_at + self.open_s - now)

    def success(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._probing = False

    def failure(self, now: float) -> None:
        self.failures += 1
        self._probing = False
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failures_to_open:
            self.state = BreakerState.OPEN
            self.opened_at = now

    def abandon(self) -> None:
        """The probe ended without telling anything (the client went away)."""
        self._probing = False
