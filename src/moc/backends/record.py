"""What moc writes down about a runtime process it started."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeRecord:
    """A runtime process moc started, written down so that a moc started after
    a ``kill -9`` of this one can find it again."""

    model: str
    pid: int
    port: int
    device: str
    spec_hash: str  # :meth:`Runtime.fingerprint` when it started
    started_at: float
