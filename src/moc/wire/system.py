"""Health and the stats page."""

from __future__ import annotations

from typing import Any, Literal

from typing_extensions import TypedDict

from moc.wire.devices import Device
from moc.wire.shape import closed


@closed
class Health(TypedDict):
    """Liveness and counts (``GET /health``)."""

    status: Literal["ok", "draining"]
    """draining: moc is shutting down (the status is then 503)"""
    version: str
    uptime_s: float
    devices: int
    leases: int
    """live leases"""
    waiting: int
    """acquires waiting for memory"""
    cluster: Literal["off", "ok", "degraded"]
    """degraded: Redis cannot be reached; this node serves what it holds, routes nothing"""


@closed
class ByPriority(TypedDict):
    """Jobs of each priority, by status."""

    high: dict[str, Any]
    normal: dict[str, Any]
    low: dict[str, Any]


@closed
class JobCounts(TypedDict):
    total: int
    by_status: dict[str, Any]
    by_priority: ByPriority


@closed
class QueueDepths(TypedDict):
    """Requests waiting in each priority's queue."""

    high: int
    normal: int
    low: int


@closed
class QueueStats(TypedDict):
    waiting: QueueDepths
    in_flight: int
    """requests sent to a backend and not answered yet"""


@closed
class LoadedModel(TypedDict):
    """A model that serves now."""

    model: str
    device: str | None
    reserved_bytes: int
    in_flight: int
    waiting: int
    """requests queued for it"""


@closed
class ModelStats(TypedDict):
    loaded: list[LoadedModel]
    catalog: int
    """models in the catalog"""


@closed
class Stats(TypedDict):
    """Jobs, queues, models and devices at a glance (``GET /v1/stats``)."""

    jobs: JobCounts
    queue: QueueStats
    models: ModelStats
    devices: list[Device]
