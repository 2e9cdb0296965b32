"""Yieldable leases with a real SQLite file: asked to let go instead of waited
out, revoked when they do not in time, and what they free kept for the one
who asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

from moc.errors import LeaseRevoked
from moc.leases.store import LeaseStore
from moc.store.sqlite import Database
from tests.leases.test_service import MIB, Parts, build, req, sample, svc

__all__ = ["svc"]  # the fixture, shared


async def test_a_higher_priority_waiter_asks_a_yieldable_lease_and_gets_its_memory(
    svc: Parts,
) -> None:
    service, _, _, metrics = svc
    job = await service.acquire(req(800, priority=20, yield_s=5.0, holder="trainer"))
    events = service.watch(job.id)
    waiting = asyncio.create_task(service.acquire(req(500, priority=50, wait_s=5)))
    asked = await asyncio.wait_for(events.get(), 2)
    assert asked["event"] == "yield"
    assert asked["reason"] == "a lease of priority 50"
    assert service.get(job.id).yield_by == asked["yield_by"]
    assert sample(metrics, "moc_lease_yield_requests_total", device="d0") == 1
    service.release(job.id, None)
    lease = await asyncio.wait_for(waiting, 2)
    assert lease.bytes == 500 * MIB
    assert (await events.get()) == {"event": "ended", "state": "released"}


async def test_a_lease_not_released_by_its_deadline_is_revoked(svc: Parts) -> None:
    service, ledger, _, metrics = svc
    job = await service.acquire(req(800, priority=20, yield_s=0.3))
    events = service.watch(job.id)
    waiting = asyncio.create_task(service.acquire(req(500, priority=50, wait_s=5)))
    assert (await asyncio.wait_for(events.get(), 2))["event"] == "yield"
    assert (await asyncio.wait_for(events.get(), 3)) == {"event": "ended", "state": "revoked"}
    await asyncio.wait_for(waiting, 2)
    try:
        service.get(job.id)
        raise AssertionError("the unyielded lease is still live")
    except LeaseRevoked:
        pass
    assert sample(metrics, "moc_lease_revocations_total", device="d0") == 1
    assert ledger.free("d0") == 500 * MIB


async def test_leases_that_cannot_yield_or_rank_higher_are_not_asked(svc: Parts) -> None:
    service, _, _, metrics = svc
    plain = await service.acquire(req(400, priority=10))
    senior = await service.acquire(req(400, priority=60, yield_s=5.0))
    waiting = asyncio.create_task(service.acquire(req(500, priority=50, wait_s=0.3)))
    await asyncio.sleep(0.1)
    assert service.get(plain.id).yield_by is None
    assert service.get(senior.id).yield_by is None
    assert sample(metrics, "moc_lease_yield_requests_total", device="d0") == 0
    waiting.cancel()


async def test_a_hold_keeps_freed_memory_from_lower_priority_waiters(svc: Parts) -> None:
    service, ledger, _, _ = svc
    job = await service.acquire(req(800, priority=20, yield_s=5.0))
    with service.hold_back("d0", 50):
        service.release(job.id, None)
        # the job asks again at once, as a yielded learning job does: it waits
        again = asyncio.create_task(service.acquire(req(800, priority=20, wait_s=5)))
        await asyncio.sleep(0.1)
        assert not again.done()
        assert ledger.free("d0") == 1000 * MIB  # the load that asked reserves it now
    granted = await asyncio.wait_for(again, 2)  # the hold is gone: granted
    assert granted.bytes == 800 * MIB


async def test_yield_s_and_a_later_pid_survive_a_restart(tmp_path: Path) -> None:
    service, _, db, _ = build(tmp_path / "moc.db")
    service.restore()
    lease = await service.acquire(req(100, yield_s=7.5))
    service.attach_pid(lease.id, 4242)
    db.close()
    again = LeaseStore(Database(tmp_path / "moc.db")).load()[0]
    assert [(x.id, x.yield_s, x.pid) for x in again] == [(lease.id, 7.5, 4242)]
