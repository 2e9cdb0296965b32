"""The lease service with a real SQLite file: waiting, cancellation, expiry,
persistence and what happens when the store cannot be written."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from moc.clock import SystemClock
from moc.config import LeasesConfig
from moc.errors import InsufficientMemory, LeaseExpired, QueueFull, ShuttingDown, StoreUnavailable
from moc.leases.model import LeaseRequest
from moc.leases.service import LeaseService
from moc.leases.store import LeaseStore
from moc.ledger import Ledger
from moc.store.sqlite import Database
from moc.telemetry.metrics import Metrics
from tests.store.sqlite_faults import deny_commit

MIB = 1024 * 1024
Parts = tuple[LeaseService, Ledger, Database, Metrics]


def build(path: Path, **config: float) -> Parts:
    ledger = Ledger()
    ledger.add_device("d0", "host", 1000 * MIB, 1.0)
    db = Database(path)
    metrics = Metrics()
    service = LeaseService(ledger, LeaseStore(db), SystemClock(), metrics, LeasesConfig(**config))  # type: ignore[arg-type]
    return service, ledger, db, metrics


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[Parts]:
    parts = build(tmp_path / "moc.db")
    parts[0].restore()
    parts[0].start()
    yield parts
    await parts[0].close()
    parts[2].close()


def req(mib: int, **kw: object) -> LeaseRequest:
    return LeaseRequest(bytes=mib * MIB, ttl_s=float(kw.pop("ttl_s", 30.0)), **kw)  # type: ignore[arg-type]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_a_waiting_request_is_granted_when_memory_frees(svc: Parts) -> None:
    service, _ledger, _, metrics = svc
    holder = await service.acquire(req(800))
    waiting = asyncio.create_task(service.acquire(req(500, wait_s=5)))
    await asyncio.sleep(0.05)
    assert service.waiter_count() == 1
    service.release(holder.id, holder.fencing_token)
    lease = await asyncio.wait_for(waiting, 1)
    assert lease.bytes == 500 * MIB
    assert service.waiter_count() == 0
    assert sample(metrics, "moc_lease_wait_seconds_count", outcome="granted") == 1


async def test_a_wait_that_times_out_says_how_long_it_waited(svc: Parts) -> None:
    service, _, _, metrics = svc
    await service.acquire(req(800))
    with pytest.raises(InsufficientMemory, match=r"after waiting 0\.\ds") as info:
        await service.acquire(req(500, wait_s=0.3))
    assert info.value.details["free_bytes"] == 200 * MIB
    assert service.waiter_count() == 0
    assert sample(metrics, "moc_lease_wait_seconds_count", outcome="timeout") == 1


async def test_no_wait_is_refused_at_once(svc: Parts) -> None:
    service, _, _, metrics = svc
    await service.acquire(req(800))
    with pytest.raises(InsufficientMemory):
        await service.acquire(req(500))
    assert sample(metrics, "moc_lease_denials_total", reason="insufficient_memory") == 1


async def test_a_grant_that_races_cancellation_is_given_back(svc: Parts) -> None:
    service, ledger, db, _ = svc
    holder = await service.acquire(req(800))
    waiting = asyncio.create_task(service.acquire(req(500, wait_s=5)))
    await asyncio.sleep(0.05)
    service.release(holder.id, None)  # grants the waiter synchronously...
    waiting.cancel()  # ...but its client is gone before it can answer
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert service.live() == []
    assert ledger.view("d0").held == 0
    states = dict(db.conn.execute("SELECT state, count(*) FROM leases GROUP BY state"))
    assert states == {"released": 2}


async def test_a_cancelled_waiter_unblocks_those_behind_it(svc: Parts) -> None:
    service, _, _, _ = svc
    await service.acquire(req(600))
    big = asyncio.create_task(service.acquire(req(800, wait_s=5)))
    await asyncio.sleep(0.02)
    small = asyncio.create_task(service.acquire(req(300, wait_s=5)))
    await asyncio.sleep(0.02)
    assert not small.done()  # blocked behind the big waiter
    big.cancel()
    lease = await asyncio.wait_for(small, 1)
    assert lease.bytes == 300 * MIB


async def test_leases_expire_within_a_second(svc: Parts) -> None:
    service, ledger, _, metrics = svc
    lease = await service.acquire(req(100, ttl_s=1))
    await asyncio.sleep(1.0 + 0.6)
    assert ledger.view("d0").held == 0
    assert sample(metrics, "moc_lease_expiries_total", device="d0") == 1
    with pytest.raises(LeaseExpired):
        await service.renew(lease.id, None, None)


async def test_too_many_waiters_is_queue_full(tmp_path: Path) -> None:
    service, _, db, _ = build(tmp_path / "q.db", max_waiters=1)
    service.restore()
    await service.acquire(req(1000))
    first = asyncio.create_task(service.acquire(req(10, wait_s=5)))
    await asyncio.sleep(0.02)
    with pytest.raises(QueueFull, match="max_waiters = 1"):
        await service.acquire(req(10, wait_s=5))
    await service.close()
    with pytest.raises(ShuttingDown):
        await first
    db.close()


async def test_close_turns_waiters_away_and_refuses_new_requests(svc: Parts) -> None:
    service, _, _, _ = svc
    await service.acquire(req(1000))
    waiting = asyncio.create_task(service.acquire(req(10, wait_s=5)))
    await asyncio.sleep(0.02)
    assert await service.close() == 1
    with pytest.raises(ShuttingDown):
        await waiting
    with pytest.raises(ShuttingDown):
        await service.acquire(req(1))


async def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    service, ledger, db, _ = build(tmp_path / "ro.db")
    service.restore()
    lease = await service.acquire(req(100))
    db.conn.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreUnavailable):
        await service.acquire(req(100))
    with pytest.raises(StoreUnavailable):
        await service.renew(lease.id, 999.0, None)
    with pytest.raises(StoreUnavailable):
        service.release(lease.id, None)
    assert [l.id for l in service.live()] == [lease.id]
    assert service.live()[0].ttl_s == 30.0
    assert ledger.view("d0").held == 100 * MIB
    db.conn.execute("PRAGMA query_only = OFF")
    db.close()


async def test_restore_keeps_live_leases_and_expires_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    first, _, db, _ = build(path)
    first.restore()
    live = await first.acquire(req(100, ttl_s=60))
    await first.acquire(req(100, ttl_s=1))
    gone = await first.acquire(req(100))
    first.release(gone.id, None)
    db.close()  # as if killed: no close() of the service
    await asyncio.sleep(1.1)
    second, ledger, db2, _ = build(path)
    restored, expired = second.restore()
    assert (restored, expired) == (1, 1)
    assert [l.id for l in second.live()] == [live.id]
    assert second.live()[0].expires_at == pytest.approx(live.expires_at, abs=0.01)
    assert ledger.view("d0").held == 100 * MIB
    nxt = await second.acquire(req(1))
    assert nxt.fencing_token == 4
    db2.close()


async def test_overuse_is_reported_once_per_crossing(
    svc: Parts, caplog: pytest.LogCaptureFixture
) -> None:
    service, _, _, metrics = svc
    lease = await service.acquire(req(100, pid=1234))
    caplog.set_level(logging.INFO, logger="moc.leases")
    service.note_usage({lease.id: 150 * MIB})
    service.note_usage({lease.id: 160 * MIB})
    assert service.over_limit(lease.id)
    assert sample(metrics, "moc_lease_overuse_total", device="d0") == 1
    service.note_usage({lease.id: 50 * MIB})
    assert not service.over_limit(lease.id)
    assert service.used_bytes(lease.id) == 50 * MIB
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("lease holder uses more than it leased") == 1
    assert messages.count("lease holder back within its lease") == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    sqlite3.connect(path).execute("PRAGMA user_version = 999").connection.close()
    with pytest.raises(StoreUnavailable, match="newer than this moc understands"):
        Database(path)


async def test_concurrent_grants_are_answered_only_once_committed(svc: Parts) -> None:
    """Grants made in one turn of the loop share one commit (group commit);
    each is acknowledged only after it, and a second connection sees them all."""
    service, ledger, db, _ = svc
    leases = await asyncio.gather(*(service.acquire(req(10)) for _ in range(8)))
    with sqlite3.connect(db.path) as other:
        stored = {r[0] for r in other.execute("SELECT id FROM leases WHERE state = 'active'")}
    assert stored == {lease.id for lease in leases}
    assert ledger.view("d0").held == 80 * MIB


async def test_a_grant_whose_commit_fails_is_taken_back(svc: Parts) -> None:
    service, ledger, db, _ = svc
    deny_commit(db.conn)
    outcomes = await asyncio.gather(
        *(service.acquire(req(100)) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    assert ledger.view("d0").held == 0  # the memory came back
    assert service.live() == []
    db.conn.set_authorizer(None)
    assert (await service.acquire(req(100))).bytes == 100 * MIB


async def test_a_renew_whose_commit_fails_keeps_the_old_deadline(svc: Parts) -> None:
    service, _, db, _ = svc
    lease = await service.acquire(req(10, ttl_s=30.0))
    deny_commit(db.conn)
    with pytest.raises(StoreUnavailable):
        await service.renew(lease.id, 999.0, None)
    assert service.get(lease.id).expires_at == lease.expires_at


async def test_a_grant_whose_client_left_before_the_commit_is_released(svc: Parts) -> None:
    """The second of two grants in one turn waits for the batch's commit; its
    client going away then must not leave its memory held until the TTL."""
    service, ledger, db, _ = svc
    first = asyncio.create_task(service.acquire(req(100, ttl_s=3600.0)))
    second = asyncio.create_task(service.acquire(req(200, ttl_s=3600.0)))
    await asyncio.sleep(0)  # both ran: the first committed alone, the second is staged
    assert first.done()
    assert not second.done()
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    await asyncio.sleep(0.05)  # the batch commits, and the unclaimed lease is released
    assert [lease.id for lease in service.live()] == [first.result().id]
    assert ledger.view("d0").held == 100 * MIB
    with sqlite3.connect(db.path) as other:
        states = sorted(r[0] for r in other.execute("SELECT state FROM leases"))
    assert states == ["active", "released"]
