"""Random sequences of acquire / renew / release / expire / wait never break
the ledger's arithmetic and never reuse a fencing token."""

from __future__ import annotations

import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from moc.errors import ExceedsCapacity, LeaseNotFound, LeaseRevoked
from moc.leases.model import EndState, LeaseRequest
from moc.leases.table import Grant, LeaseTable
from moc.ledger import Ledger

MIB = 1024 * 1024
DEVICES = {"a": 1000 * MIB, "b": 300 * MIB}


class LeaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        for name, size in DEVICES.items():
            self.ledger.add_device(name, "host", size, 0.9)
        self.table = LeaseTable(self.ledger)
        self.now = 0.0
        self.ids = (f"l{n}" for n in itertools.count())
        self.seq = itertools.count(1)
        self.tokens_seen: dict[str, set[int]] = {d: set() for d in DEVICES}
        self.last_token = dict.fromkeys(DEVICES, 0)
        self.ended: set[str] = set()

    def _record(self, decision: Grant) -> None:
        lease = decision.lease
        assert lease.fencing_token not in self.tokens_seen[lease.device]
        assert lease.fencing_token > self.last_token[lease.device]
        self.tokens_seen[lease.device].add(lease.fencing_token)
        self.last_token[lease.device] = lease.fencing_token
        self.ended.update(v.id for v in decision.revoked)

    @rule(
        mib=st.integers(1, 1200),
        device=st.sampled_from([None, "a", "b"]),
        priority=st.integers(0, 100),
        preemptible=st.booleans(),
        ttl=st.floats(1, 100),
        external=st.integers(0, 200),
    )
    def acquire(
        self,
        mib: int,
        device: str | None,
        priority: int,
        preemptible: bool,
        ttl: float,
        external: int,
    ) -> None:
        self.ledger.set_external("a", external * MIB)
        request = LeaseRequest(
            bytes=mib * MIB, ttl_s=ttl, device=device, priority=priority, preemptible=preemptible
        )
        try:
            decision = self.table.decide_acquire(request, next(self.ids), self.now)
        except ExceedsCapacity:
            assert all(
                not self.ledger.could_ever_fit(d, request.bytes)
                for d in ([device] if device else DEVICES)
            )
            return
        if isinstance(decision, Grant):
            self._record(decision)
            self.table.apply_grant(decision, self.now)
        else:
            self.table.enqueue(next(self.seq), request, self.now)

    @rule(data=st.data())
    @precondition(lambda self: self.table.active())
    def release(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self.table.active()))
        self.table.apply_end(lease.id, EndState.RELEASED, self.now)
        self.ended.add(lease.id)
        self._serve_waiters()

    @rule(data=st.data(), ttl=st.floats(1, 100))
    @precondition(lambda self: self.table.active())
    def renew(self, data: st.DataObject, ttl: float) -> None:
        lease = data.draw(st.sampled_from(self.table.active()))
        if lease.expires_at <= self.now:
            return
        held = self.table.check_held(lease.id, lease.fencing_token, self.now)
        self.table.apply_renew(self.table.renewed(held, ttl, self.now))

    @rule(seconds=st.floats(0, 60))
    def advance_and_expire(self, seconds: float) -> None:
        self.now += seconds
        for lease in self.table.take_due(self.now):
            self.table.apply_end(lease.id, EndState.EXPIRED, self.now)
            self.ended.add(lease.id)
        self._serve_waiters()

    @rule(data=st.data())
    @precondition(lambda self: self.table.waiters())
    def give_up_waiting(self, data: st.DataObject) -> None:
        waiter = data.draw(st.sampled_from(self.table.waiters()))
        self.table.drop_waiter(waiter.seq)
        self._serve_waiters()

    def _serve_waiters(self) -> None:
        while (found := self.table.next_waiter_grant(next(self.ids), self.now)) is not None:
            waiter, decision = found
            self.table.drop_waiter(waiter.seq)
            self._record(decision)
            self.table.apply_grant(decision, self.now)

    @invariant()
    def held_never_exceeds_capacity(self) -> None:
        for view in self.ledger.views():
            assert view.held == sum(l.bytes for l in self.table.active() if l.device == view.id)
            assert view.held <= view.capacity

    @invariant()
    def ended_leases_stay_ended(self) -> None:
        active = {l.id for l in self.table.active()}
        assert not (active & self.ended)

    @invariant()
    def revoked_renew_fails_clearly(self) -> None:
        for lease_id in list(self.ended)[:3]:
            try:
                self.table.check_held(lease_id, None, self.now)
            except (LeaseNotFound, LeaseRevoked):
                continue
            raise AssertionError(f"{lease_id} ended but is still held")


LeaseMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLeaseMachine = LeaseMachine.TestCase
