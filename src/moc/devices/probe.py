"""What a device probe reports, and the protocol every probe follows."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field
from typing import Literal, Protocol

DeviceKind = Literal["nvidia", "host"]


@dataclass(frozen=True)
class DeviceInfo:
    id: str
    kind: DeviceKind
    name: str
    total: int
    uuid: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class DeviceReading:
    """One observation of one device.

    ``used`` is all memory in use on the device; ``process_usage`` maps pids to
    the bytes each uses there (for a host device: only the pids asked about).
    ``error`` is set when the device could not be read; then the other fields
    are meaningless and the previous observation should stand.
    """

    id: str
    used: int = 0
    process_usage: dict[int, int] = field(default_factory=dict)
    error: str | None = None


class DeviceProbe(Protocol):
    def devices(self) -> list[DeviceInfo]: ...

    def read(self, pids: Set[int]) -> list[DeviceReading]:
        """Observe every device of this probe. Blocking: call it off the event loop."""
        ...

    def close(self) -> None: ...
