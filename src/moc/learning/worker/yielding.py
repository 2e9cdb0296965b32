"""The yield request: SIGUSR1 from the daemon, read at step boundaries.

The handler only sets a flag (the one thing a signal handler can do without
racing the work it interrupts); the job checks :func:`requested` between
steps, checkpoints and exits with ``EXIT_YIELDED``. ``python -m
moc.learning.worker`` installs the handler before anything slow (importing
torch takes seconds), because SIGUSR1's default action would end the process.

The flag is this module's state, owned by the handler (the only writer).
"""

from __future__ import annotations

import signal
from types import FrameType

_requested = False


def _handle(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = True


def install() -> None:
    """Route SIGUSR1 to the flag; calling it again changes nothing."""
    signal.signal(signal.SIGUSR1, _handle)


def requested() -> bool:
    return _requested
