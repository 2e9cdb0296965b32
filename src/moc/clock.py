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
