"""moc, the ModelOps Coordinator."""

__version__ = "0.1.0"

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
