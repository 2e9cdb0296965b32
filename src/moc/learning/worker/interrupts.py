"""The daemon's signals as seen by a job's work loop.

SIGUSR1 (yield) only sets a flag (:mod:`moc.learning.worker.yielding`, whose
handler is installed before anything slow), which the work loop reads at its
step boundaries: a handler that did more would run in the middle of a step.
SIGTERM (cancel) raises :class:`Cancelled` wherever the child is, so
``finally`` blocks remove partial output before the process ends.

:class:`Interrupts` owns the process's SIGTERM handler while it is entered,
and puts the previous one back on exit.
"""

from __future__ import annotations

import signal
from types import FrameType, TracebackType
from typing import Any

from moc.learning.worker import yielding

EXIT_CANCELLED = 128 + signal.SIGTERM


class Cancelled(SystemExit):
    """SIGTERM arrived: the job is cancelled; the process exits with 143."""

    def __init__(self) -> None:
        super().__init__(EXIT_CANCELLED)


class Interrupts:
    """Yield requests (a flag) and cancellation (an exception), while entered."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @property
    def yield_requested(self) -> bool:
        return yielding.requested()

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        raise Cancelled

    def __enter__(self) -> Interrupts:
        yielding.install()
        self._previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, self._on_term)}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
