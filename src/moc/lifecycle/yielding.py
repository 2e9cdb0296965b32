"""What the lifecycle asks of memory holders that yield (learning jobs and
yieldable leases, both held as leases): the interface the lease service
implements, so that the loader can make room with them."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from moc.leases.model import Lease

# A model load ranks as a lease of the default priority: learning jobs, which
# default below it, yield to inference; a job given a higher priority does not.
LOAD_PRIORITY = 50


class Yielders(Protocol):
    def yieldable(self, devices: list[str], below: int) -> list[Lease]: ...

    def request_yield(self, lease_ids: list[str], reason: str) -> float:
        """Ask them to let go; the seconds until the last deadline."""
        ...

    def hold_back(self, device: str, priority: int) -> AbstractContextManager[None]:
        """Keep what is freed on ``device`` from anyone below ``priority``."""
        ...


class NoYielders:
    """For a lifecycle built without leases (tests): nothing ever yields."""

    def yieldable(self, devices: list[str], below: int) -> list[Lease]:
        return []

    def request_yield(self, lease_ids: list[str], reason: str) -> float:
        return 0.0

    def hold_back(self, device: str, priority: int) -> AbstractContextManager[None]:
        return nullcontext()
