"""Time as moc keeps it.

Lease deadlines must not jump when the wall clock is stepped (NTP, a user), yet
they must survive a restart. ``SystemClock.now()`` is therefore monotonic inside
one process and anchored to the wall clock at start: deadlines persisted by one
process read correctly in the next, and never move while it runs.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, never going backwards within a process."""
        ...


class SystemClock:
    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0)


class ManualClock:
    """A clock that moves only when told to; for tests and simulations."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
