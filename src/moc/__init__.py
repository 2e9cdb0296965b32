"""moc, the ModelOps Coordinator."""

from moc.errors import (
    BackendUnavailable,
    CircuitOpen,
    ExceedsCapacity,
    Forbidden,
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
    RateLimited,
    Unauthenticated,
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
    "Forbidden",
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
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
    "__version__",
]
