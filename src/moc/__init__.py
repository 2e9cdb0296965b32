"""moc, the ModelOps Coordinator."""

__version__ = "0.1.0"

from moc.errors import (
    ExceedsCapacity,
    InsufficientMemory,
    InvalidRequest,
    LeaseExpired,
    LeaseNotFound,
    LeaseRevoked,
    MocError,
)
from moc.sdk import AsyncClient, Client, LeaseInfo

__all__ = [
    "AsyncClient",
    "Client",
    "ExceedsCapacity",
    "InsufficientMemory",
    "InvalidRequest",
    "LeaseExpired",
    "LeaseInfo",
    "LeaseNotFound",
    "LeaseRevoked",
    "MocError",
    "__version__",
]
