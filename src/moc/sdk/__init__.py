"""The Python SDK: ``moc.Client`` and ``moc.AsyncClient``.

Both send ``api_key`` (default: the ``MOC_API_KEY`` environment variable) as a
bearer token when moc has authentication on.
"""

from moc.sdk.aclient import AsyncClient, AsyncHeldLease
from moc.sdk.client import Client, HeldLease
from moc.sdk.wire import LeaseInfo

__all__ = ["AsyncClient", "AsyncHeldLease", "Client", "HeldLease", "LeaseInfo"]
