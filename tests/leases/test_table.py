"""The lease table's decisions, driven synchronously with explicit time."""

from __future__ import annotations

import itertools

import pytest

from moc.errors import (
    DeviceNotFound,
    ExceedsCapacity,
    FencingTokenMismatch,
    LeaseExpired,
    LeaseNotFound,
    LeaseReleased,
    LeaseRevoked,
)
from moc.leases.model import EndState, Lease, LeaseRequest
from moc.leases.table import Blocked, Grant, LeaseTable
from moc.ledger import Ledger

MIB = 1024 * 1024
T0 = 1_000_000.0
ids = (f"lease-{n}" for n in itertools.count())


def make_table(**devices: int) -> tuple[LeaseTable, Ledger]:
    ledger = Ledger()
    for name, mib in (devices or {"d0": 1000}).items():
        ledger.add_device(name, "host", mib * MIB, 1.0)
    return LeaseTable(ledger), ledger


def req(mib: int, **kw: object) -> LeaseRequest:
    return LeaseRequest(bytes=mib * MIB, ttl_s=float(kw.pop("ttl_s", 30.0)), **kw)  # type: ignore[arg-type]


def grant(table: LeaseTable, request: LeaseRequest, now: float = T0) -> Lease:
    decision = table.decide_acquire(request, next(ids), now)
    assert isinstance(decision, Grant), decision
    table.apply_grant(decision, now)
    return decision.lease


def test_grant_reserves_in_the_ledger_and_numbers_tokens_per_device() -> None:
    table, ledger = make_table(a=1000, b=1000)
    first = grant(table, req(100, device="a"))
    second = grant(table, req(100, device="a"))
    other = grant(table, req(100, device="b"))
    assert (first.fencing_token, second.fencing_token, other.fencing_token) == (1, 2, 1)
    assert ledger.view("a").held == 200 * MIB
    assert first.expires_at == T0 + 30


def test_decide_never_mutates() -> None:
    table, ledger = make_table()
    decision = table.decide_acquire(req(100), "x", T0)
    assert isinstance(decision, Grant)
    assert ledger.view("d0").held == 0
    assert table.active() == []
    assert table.last_token("d0") == 0


def test_best_fit_when_no_device_is_named() -> None:
    table, _ = make_table(big=1000, small=300)
    assert grant(table, req(200)).device == "small"
    assert grant(table, req(200)).device == "big"


def test_does_not_fit_is_blocked_with_free_and_retry_after() -> None:
    table, _ = make_table(d0=1000)
    grant(table, req(900, ttl_s=10))
    decision = table.decide_acquire(req(200), "x", T0 + 2)
    assert isinstance(decision, Blocked)
    assert decision.free == 100 * MIB
    assert decision.retry_after_s == pytest.approx(8.0)


def test_larger_than_capacity_can_never_fit() -> None:
    table, _ = make_table(a=1000, b=500)
    with pytest.raises(ExceedsCapacity, match="it can never fit") as info:
        table.decide_acquire(req(1001), "x", T0)
    assert info.value.details["capacity_bytes"] == 1000 * MIB
    with pytest.raises(ExceedsCapacity):
        table.decide_acquire(req(600, device="b"), "x", T0)


def test_unknown_device() -> None:
    table, _ = make_table()
    with pytest.raises(DeviceNotFound, match="unknown device 'gpu7'"):
        table.decide_acquire(req(1, device="gpu7"), "x", T0)


def test_waiters_are_served_by_priority_then_arrival() -> None:
    table, _ = make_table(d0=1000)
    holder = grant(table, req(1000))
    table.enqueue(1, req(400, priority=10), T0)
    table.enqueue(2, req(400, priority=90), T0)
    table.enqueue(3, req(400, priority=90), T0)
    assert table.next_waiter_grant("x", T0) is None
    table.apply_end(holder.id, EndState.RELEASED, T0)
    served = []
    while (found := table.next_waiter_grant(next(ids), T0)) is not None:
        waiter, decision = found
        table.drop_waiter(waiter.seq)
        table.apply_grant(decision, T0)
        served.append(waiter.seq)
    assert served == [2, 3]  # 1 still waits: 200 MiB left


def test_a_waiter_blocks_smaller_later_requests_from_starving_it() -> None:
    table, _ = make_table(d0=1000)
    grant(table, req(600))
    table.enqueue(1, req(800, priority=50), T0)
    # 400 MiB are free, but the 800 MiB waiter is first in line on d0.
    assert isinstance(table.decide_acquire(req(100, priority=50), "x", T0), Blocked)
    assert isinstance(table.decide_acquire(req(100, priority=10), "x", T0), Blocked)
    # A strictly higher priority goes ahead of it.
    assert isinstance(table.decide_acquire(req(100, priority=51), "x", T0), Grant)
    # ... and so does a later waiter for another device.
    table2, _ = make_table(a=1000, b=1000)
    grant(table2, req(600, device="a"))
    table2.enqueue(1, req(800, device="a"), T0)
    table2.enqueue(2, req(100, device="b"), T0)
    found = table2.next_waiter_grant("y", T0)
    assert found is not None
    assert found[0].seq == 2


def test_preemption_revokes_lowest_priority_newest_first_only_when_needed() -> None:
    table, ledger = make_table(d0=1000)
    keep = grant(table, req(300, priority=20, preemptible=False))
    old_low = grant(table, req(300, priority=10, preemptible=True), T0)
    new_low = grant(table, req(300, priority=10, preemptible=True), T0 + 1)
    # 100 free; 250 more needed: one 300 MiB victim suffices, the newest.
    decision = table.decide_acquire(req(350, priority=60), "hi", T0 + 2)
    assert isinstance(decision, Grant)
    assert [v.id for v in decision.revoked] == [new_low.id]
    table.apply_grant(decision, T0 + 2)
    assert ledger.view("d0").held == 950 * MIB
    with pytest.raises(LeaseRevoked):
        table.check_held(new_low.id, None, T0 + 3)
    table.check_held(old_low.id, None, T0 + 3)
    table.check_held(keep.id, None, T0 + 3)


def test_preemption_never_takes_equal_priority_or_non_preemptible() -> None:
    table, _ = make_table(d0=1000)
    grant(table, req(500, priority=50, preemptible=True))
    grant(table, req(500, priority=10, preemptible=False))
    assert isinstance(table.decide_acquire(req(300, priority=50), "x", T0), Blocked)


def test_renew_extends_from_now_and_keeps_the_token() -> None:
    table, _ = make_table()
    lease = grant(table, req(10, ttl_s=5))
    held = table.check_held(lease.id, lease.fencing_token, T0 + 4)
    renewed = table.renewed(held, 20.0, T0 + 4)
    table.apply_renew(renewed)
    assert renewed.expires_at == T0 + 24
    assert renewed.fencing_token == lease.fencing_token
    assert table.next_expiry() == T0 + 24


def test_renew_errors_say_why() -> None:
    table, _ = make_table()
    lease = grant(table, req(10, ttl_s=5))
    with pytest.raises(FencingTokenMismatch):
        table.check_held(lease.id, lease.fencing_token + 1, T0)
    with pytest.raises(LeaseExpired):
        table.check_held(lease.id, None, T0 + 5)
    assert [l.id for l in table.take_due(T0 + 5)] == [lease.id]
    table.apply_end(lease.id, EndState.EXPIRED, T0 + 5)
    with pytest.raises(LeaseExpired):
        table.check_held(lease.id, None, T0 + 6)
    with pytest.raises(LeaseNotFound) as unknown:
        table.check_held("nope", None, T0)
    assert type(unknown.value) is LeaseNotFound
    other = grant(table, req(10))
    table.apply_end(other.id, EndState.RELEASED, T0)
    with pytest.raises(LeaseReleased):
        table.check_held(other.id, None, T0)


def test_take_due_skips_renewed_and_ended_leases() -> None:
    table, _ = make_table()
    a = grant(table, req(10, ttl_s=5))
    b = grant(table, req(10, ttl_s=5))
    c = grant(table, req(10, ttl_s=5))
    table.apply_renew(table.renewed(a, 100.0, T0 + 1))
    table.apply_end(b.id, EndState.RELEASED, T0 + 1)
    assert [l.id for l in table.take_due(T0 + 10)] == [c.id]
    table.apply_end(c.id, EndState.EXPIRED, T0 + 10)
    assert table.next_expiry() == T0 + 101
    assert table.take_due(T0 + 10) == []


def test_forget_ended_by_age_and_count() -> None:
    table, _ = make_table()
    leases = [grant(table, req(1)) for _ in range(5)]
    for n, lease in enumerate(leases):
        table.apply_end(lease.id, EndState.RELEASED, T0 + n)
    assert table.forget_ended(before=T0 + 2, keep_at_most=100) == [leases[0].id, leases[1].id]
    assert table.forget_ended(before=T0, keep_at_most=2) == [leases[2].id]
    with pytest.raises(LeaseNotFound) as info:
        table.check_held(leases[0].id, None, T0)
    assert type(info.value) is LeaseNotFound


def test_restore_reserves_and_continues_tokens() -> None:
    table, _ledger = make_table()
    lease = grant(table, req(100))
    fresh, fresh_ledger = make_table()
    fresh.restore([lease], [], {"d0": 7})
    assert fresh_ledger.view("d0").held == 100 * MIB
    assert grant(fresh, req(1)).fencing_token == 8
