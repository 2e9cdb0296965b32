"""moc.Client and moc.AsyncClient against a real ``moc serve``."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import moc
from moc.errors import ExceedsCapacity, InsufficientMemory, LeaseRevoked, Unavailable
from tests.conftest import MIB, MocProcess, free_port


def test_client_calls(server: MocProcess) -> None:
    with moc_client(server) as client:
        assert client.health()["status"] == "ok"
        assert client.devices()[0]["id"] == "host"
        lease = client.acquire(mb=64, ttl_s=20, holder="sdk")
        assert lease.bytes == 64 * MIB
        assert [l.id for l in client.leases(holder="sdk")] == [lease.id]
        assert client.renew(lease.id, ttl_s=40).ttl_s == 40
        assert client.release(lease.id).id == lease.id
        with pytest.raises(ExceedsCapacity):
            client.acquire(mb=4096)
        big = client.acquire(mb=800)
        with pytest.raises(InsufficientMemory) as info:
            client.acquire(mb=500)
        assert info.value.retry_after_s >= 1
        client.release(big.id)


def moc_client(proc: MocProcess) -> moc.Client:
    return moc.Client(proc.url)


def test_held_lease_renews_and_releases(server: MocProcess) -> None:
    with moc_client(server) as client:
        # Renewals every 0.25 s against a 2 s TTL: eight missed in a row (a
        # busy machine starving the renew thread) before the lease could lapse.
        with client.lease(mb=32, ttl_s=2, renew_every_s=0.25, holder="ctx") as held:
            first_expiry = held.info.expires_at if held.info else ""
            time.sleep(2.6)  # longer than the TTL: only renewals keep it alive
            (live,) = client.leases(holder="ctx")
            assert live.id == held.id
            assert live.expires_at != first_expiry
            assert live.pid == os.getpid()  # a held lease names its process
            held.check()
        assert client.leases(holder="ctx") == []


def test_held_lease_is_released_when_the_block_raises(server: MocProcess) -> None:
    with moc_client(server) as client:
        seen: list[int] = []

        def work() -> None:
            with client.lease(mb=32, holder="raiser"):
                seen.append(len(client.leases(holder="raiser")))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            work()
        assert seen == [1]
        assert client.leases(holder="raiser") == []


def test_held_lease_notices_revocation(server: MocProcess) -> None:
    lost: list[Exception] = []
    with moc_client(server) as client:
        with client.lease(
            mb=600, priority=5, preemptible=True, ttl_s=30, renew_every_s=0.1, on_lost=lost.append
        ) as held:
            taker = client.acquire(mb=600, priority=95)
            assert held.lost.wait(3)
            assert isinstance(held.lost_reason, LeaseRevoked)
            with pytest.raises(LeaseRevoked):
                held.check()
        assert len(lost) == 1
        client.release(taker.id)


async def test_async_client_and_held_lease(server: MocProcess) -> None:
    async with moc.AsyncClient(server.url) as client:
        assert (await client.health())["status"] == "ok"
        async with client.lease(mb=16, ttl_s=1, holder="async") as held:
            await asyncio.sleep(1.5)
            (live,) = await client.leases(holder="async")
            assert live.id == held.id
        assert await client.leases(holder="async") == []
        lease = await client.acquire(bytes=MIB)
        assert (await client.renew(lease.id)).id == lease.id
        await client.release(lease.id)


def test_unreachable_moc_is_unavailable() -> None:
    with (
        moc.Client(f"http://127.0.0.1:{free_port()}", timeout=1) as client,
        pytest.raises(Unavailable, match="cannot reach moc"),
    ):
        client.health()


def test_public_surface() -> None:
    assert sorted(moc.__all__) == sorted(
        [
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
    )
