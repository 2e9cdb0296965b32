"""The Python SDK: ``moc.Client`` and ``moc.AsyncClient``."""

from moc.sdk.aclient import AsyncClient, AsyncHeldLease
from moc.sdk.client import Client, HeldLease
from moc.sdk.wire import LeaseInfo

__all__ = ["AsyncClient", "AsyncHeldLease", "Client", "HeldLease", "LeaseInfo"]
