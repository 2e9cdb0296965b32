"""moc, the ModelOps Coordinator."""

from moc.errors import (
    BackendUnavailable,
    CircuitOpen,
    ExceedsCapacity,
    InsufficientMemory,
    InvalidRequest,
    JobNotFound,
    LeaseExpired,
    LeaseNotFound,
    LeaseRevoked,
    MocError,
    ModelNotFound,
    QueueFull,
    QueueTimeout,
    Unavailable,
)
from moc.sdk import AsyncClient, Client, LeaseInfo
from moc.version import __version__

__all__ = [
    "AsyncClient",
    "BackendUnavailable",
    "CircuitOpen",
    "Client",
    "ExceedsCapacity",
    "InsufficientMemory",
    "InvalidRequest",
    "JobNotFound",
    "LeaseExpired",
    "LeaseInfo",
    "LeaseNotFound",
    "LeaseRevoked",
    "MocError",
    "ModelNotFound",
    "QueueFull",
    "QueueTimeout",
    "Unavailable",
    "__version__",
]
