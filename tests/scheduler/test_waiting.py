"""The waiting room's rules: bulkhead, slots, priority with aging, grouping,
drains and deadlines; and its bookkeeping under random sequences of events."""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from dataclasses import replace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from moc.config import GatewayConfig
from moc.errors import InvalidRequest, QueueFull
from moc.scheduler.waiting import (
    Facts,
    Limits,
    ModelFacts,
    Priority,
    Ticket,
    TicketState,
    WaitingRoom,
)

HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW


def limits(
    max_waiting: tuple[int, int, int] = (100, 100, 100),
    timeout_s: tuple[float, float, float] = (1000.0, 1000.0, 1000.0),
    aging_s: float = 1000.0,
    group_wait_s: float = 30.0,
    max_in_flight: int = 100,
) -> Limits:
    return Limits(max_waiting, timeout_s, aging_s, group_wait_s, max_in_flight)


def warm(slots: int = 1) -> ModelFacts:
    return ModelFacts(slots=slots, warm=True, accepting=True, fits_cold=False)


def cold(slots: int = 1, fits: bool = False) -> ModelFacts:
    return ModelFacts(slots=slots, warm=False, accepting=True, fits_cold=fits)


def facts_of(table: dict[str, ModelFacts]) -> Facts:
    return lambda model: table[model]


def offer(
    room: WaitingRoom,
    model: str,
    priority: Priority,
    at: float,
    bounded: bool = True,
    deadline: float = math.inf,
) -> Ticket:
    ticket = Ticket(model, priority, at, deadline=deadline, bounded=bounded)
    room.offer(ticket)
    return ticket


def names(tickets: Iterable[Ticket], labels: dict[int, str]) -> list[str]:
    return [labels[t.id] for t in tickets]


# --- Priority and Limits ------------------------------------------------------------
def test_priority_parse_and_label() -> None:
    assert Priority.parse(" High ") is HIGH
    assert Priority.parse("low") is LOW
    assert NORMAL.label == "normal"
    with pytest.raises(InvalidRequest) as err:
        Priority.parse("urgent", "x-moc-priority")
    assert err.value.field == "x-moc-priority"
    assert err.value.details["value"] == "urgent"


def test_limits_of_gateway_config() -> None:
    config = GatewayConfig()
    got = Limits.of(config)
    q = config.queues
    assert got.max_waiting == (q.high.max_waiting, q.normal.max_waiting, q.low.max_waiting)
    assert got.timeout_s == (q.high.timeout_s, q.normal.timeout_s, q.low.timeout_s)
    assert got.aging_s == config.aging_s
    assert got.group_wait_s == config.group_wait_s
    assert got.max_in_flight == config.max_in_flight


# --- offer: bounded queues --------------------------------------------------------------
def test_offer_beyond_max_waiting_raises_queue_full_with_priority_and_limit() -> None:
    room = WaitingRoom(limits(max_waiting=(5, 2, 5)))
    offer(room, "a", NORMAL, 0.0)
    offer(room, "a", NORMAL, 0.0)
    with pytest.raises(QueueFull) as err:
        offer(room, "a", NORMAL, 0.0)
    assert err.value.details["priority"] == "normal"
    assert err.value.details["limit"] == 2
    assert err.value.retry_after_s > 0
    assert "max_waiting" in err.value.message
    # the refused ticket left no trace; other priorities still take tickets
    assert room.depth(NORMAL) == 2
    assert len(room) == 2
    offer(room, "a", HIGH, 0.0)
    assert room.depth(HIGH) == 1


def test_unbounded_tickets_do_not_count_against_max_waiting() -> None:
    room = WaitingRoom(limits(max_waiting=(5, 1, 5)))
    jobs = [offer(room, "a", NORMAL, 0.0, bounded=False) for _ in range(3)]
    offer(room, "a", NORMAL, 0.0)  # the one bounded place is still free
    with pytest.raises(QueueFull):
        offer(room, "a", NORMAL, 0.0)
    offer(room, "a", NORMAL, 0.0, bounded=False)  # jobs are still taken
    assert room.depth(NORMAL) == 5  # depth counts every waiting ticket
    assert all(j.deadline == math.inf for j in jobs)  # no queue timeout for jobs


def test_zero_max_waiting_refuses_the_priority() -> None:
    room = WaitingRoom(limits(max_waiting=(0, 10, 10)))
    with pytest.raises(QueueFull) as err:
        offer(room, "a", HIGH, 0.0)
    assert err.value.details == {"retry_after_s": 1.0, "priority": "high", "limit": 0}
    assert len(room) == 0
    offer(room, "a", HIGH, 0.0, bounded=False)
    assert room.depth(HIGH) == 1


def test_a_slot_freed_after_dispatch_makes_room_again() -> None:
    room = WaitingRoom(limits(max_waiting=(1, 1, 1)))
    first = offer(room, "a", LOW, 0.0)
    assert room.choose(0.0, facts_of({"a": warm()})) == [first]
    offer(room, "a", LOW, 0.0)  # the first one runs: the queue has room


def test_offer_sets_the_deadline_from_the_priority_timeout() -> None:
    room = WaitingRoom(limits(timeout_s=(10.0, 20.0, 30.0)))
    assert offer(room, "a", HIGH, 5.0).deadline == 15.0
    assert offer(room, "a", NORMAL, 5.0).deadline == 25.0
    assert offer(room, "a", LOW, 5.0).deadline == 35.0
    assert offer(room, "a", LOW, 5.0, deadline=7.0).deadline == 7.0  # a given one stays


# --- priority, FIFO, aging ----------------------------------------------------------------
def test_high_before_normal_before_low_when_the_slot_frees() -> None:
    room = WaitingRoom(limits())
    facts = facts_of({"a": warm(slots=1)})
    busy = offer(room, "a", LOW, 0.0)
    assert room.choose(0.0, facts) == [busy]
    low = offer(room, "a", LOW, 1.0)
    normal = offer(room, "a", NORMAL, 2.0)
    high = offer(room, "a", HIGH, 3.0)
    assert room.choose(4.0, facts) == []  # the one slot is busy
    order = []
    running = busy
    for t in (5.0, 6.0, 7.0):
        room.finish(running)
        (running,) = room.choose(t, facts)
        order.append(running)
    assert order == [high, normal, low]
    assert len(room) == 0


def test_fifo_within_a_priority() -> None:
    room = WaitingRoom(limits())
    facts = facts_of({"a": warm(slots=1)})
    tickets = [offer(room, "a", NORMAL, float(i)) for i in range(4)]
    seen = []
    for i in range(4):
        (t,) = room.choose(10.0 + i, facts)
        seen.append(t)
        room.finish(t)
    assert seen == tickets


def test_fifo_across_models_by_arrival() -> None:
    room = WaitingRoom(limits(max_in_flight=1))
    facts = facts_of({"a": warm(4), "b": warm(4)})
    b1 = offer(room, "b", NORMAL, 0.0)
    a1 = offer(room, "a", NORMAL, 1.0)
    b2 = offer(room, "b", NORMAL, 2.0)
    seen = []
    for _ in range(3):
        (t,) = room.choose(5.0, facts)
        seen.append(t)
        room.finish(t)
    assert seen == [b1, a1, b2]


def test_ticket_level_rises_one_per_aging_period() -> None:
    low = Ticket("a", LOW, arrived=100.0)
    assert low.level(100.0, 30.0) == 2
    assert low.level(129.9, 30.0) == 2
    assert low.level(130.0, 30.0) == 1
    assert low.level(159.9, 30.0) == 1
    assert low.level(160.0, 30.0) == 0
    assert low.level(10_000.0, 30.0) == 0  # never better than high
    normal = Ticket("a", NORMAL, arrived=0.0)
    assert normal.level(0.0, 5.0) == 1
    assert normal.level(5.0, 5.0) == 0
    assert Ticket("a", HIGH, arrived=0.0).level(1e6, 1.0) == 0


def test_aged_low_ticket_beats_a_fresh_normal_one() -> None:
    room = WaitingRoom(limits(aging_s=30.0))
    facts = facts_of({"a": warm(slots=1)})
    busy = offer(room, "a", HIGH, 0.0)
    room.choose(0.0, facts)
    low = offer(room, "a", LOW, 0.0)
    normal = offer(room, "a", NORMAL, 60.0)  # low waited 2 × aging_s when normal arrives
    room.finish(busy)
    assert room.choose(60.0, facts) == [low]
    room.finish(low)
    assert room.choose(61.0, facts) == [normal]


def test_without_aging_enough_a_fresh_normal_ticket_goes_first() -> None:
    room = WaitingRoom(limits(aging_s=30.0))
    facts = facts_of({"a": warm(slots=1)})
    busy = offer(room, "a", HIGH, 0.0)
    room.choose(0.0, facts)
    low = offer(room, "a", LOW, 0.0)
    normal = offer(room, "a", NORMAL, 59.0)  # low has risen only one level: a tie...
    room.finish(busy)
    assert low.level(59.0, 30.0) == normal.level(59.0, 30.0) == 1
    # ...which the older ticket wins
    assert room.choose(59.0, facts) == [low]
    room.finish(low)
    later = offer(room, "a", LOW, 59.0)
    assert room.choose(59.0, facts) == [normal]
    assert later.state is TicketState.WAITING


# --- slots and bulkhead ------------------------------------------------------------------
def test_per_model_slots_are_respected() -> None:
    room = WaitingRoom(limits())
    facts = facts_of({"a": warm(slots=2)})
    tickets = [offer(room, "a", NORMAL, float(i)) for i in range(5)]
    assert room.choose(5.0, facts) == tickets[:2]
    assert room.running("a") == 2
    assert room.choose(6.0, facts) == []
    room.finish(tickets[0])
    assert room.choose(7.0, facts) == [tickets[2]]
    assert room.running("a") == 2
    assert room.waiting_for("a") == 2


def test_a_busy_model_does_not_block_another_models_tickets() -> None:
    room = WaitingRoom(limits())
    facts = facts_of({"a": warm(slots=1), "b": warm(slots=1)})
    a1 = offer(room, "a", HIGH, 0.0)
    assert room.choose(0.0, facts) == [a1]
    a2 = offer(room, "a", HIGH, 1.0)  # better priority and older, but a is busy
    b1 = offer(room, "b", LOW, 2.0)
    assert room.choose(3.0, facts) == [b1]
    assert a2.state is TicketState.WAITING
    room.finish(a1)
    assert room.choose(4.0, facts) == [a2]


def test_bulkhead_limits_in_flight_across_models() -> None:
    room = WaitingRoom(limits(max_in_flight=2))
    facts = facts_of({m: warm(slots=5) for m in "abc"})
    a = offer(room, "a", NORMAL, 0.0)
    b = offer(room, "b", NORMAL, 1.0)
    c = offer(room, "c", NORMAL, 2.0)
    assert room.choose(3.0, facts) == [a, b]
    assert room.in_flight == 2
    assert room.choose(4.0, facts) == []
    room.finish(b)
    assert room.in_flight == 1
    assert room.choose(5.0, facts) == [c]
    assert room.in_flight == 2


def test_finish_twice_or_of_a_waiting_ticket_changes_nothing() -> None:
    room = WaitingRoom(limits())
    facts = facts_of({"a": warm(slots=2)})
    t = offer(room, "a", NORMAL, 0.0)
    waiting = offer(room, "a", NORMAL, 0.0, bounded=False)
    room.choose(0.0, facts)
    room.finish(t)
    room.finish(t)
    assert room.in_flight == 1  # waiting was dispatched alongside t
    assert waiting.state is TicketState.RUNNING
    room.finish(waiting)
    assert room.in_flight == 0
    assert room.running("a") == 0


# --- grouping -----------------------------------------------------------------------------
def test_grouping_serves_a_b_a_c_as_a_a_b_c() -> None:
    room = WaitingRoom(limits(group_wait_s=30.0))
    facts = facts_of({"a": warm(slots=1), "b": cold(), "c": cold()})
    a1 = offer(room, "a", NORMAL, 0.0)
    b1 = offer(room, "b", NORMAL, 1.0)
    a2 = offer(room, "a", NORMAL, 2.0)
    c1 = offer(room, "c", NORMAL, 3.0)
    labels = {a1.id: "A", a2.id: "A", b1.id: "B", c1.id: "C"}
    order: list[Ticket] = []
    now = 3.0
    while len(room):
        chosen = room.choose(now, facts)
        assert chosen, "nothing dispatched while tickets wait and time is short of group_wait"
        order.extend(chosen)
        for t in chosen:
            if t.model == "a":
                room.finish(t)
        now += 1.0
    assert names(order, labels) == ["A", "A", "B", "C"]
    assert order[:2] == [a1, a2]


def test_without_grouping_pressure_a_cold_model_runs_at_once() -> None:
    # the control for the test above: b is cold but nothing warm is waiting
    room = WaitingRoom(limits(group_wait_s=30.0))
    facts = facts_of({"a": warm(slots=1), "b": cold()})
    a1 = offer(room, "a", NORMAL, 0.0)
    b1 = offer(room, "b", NORMAL, 1.0)
    assert room.choose(1.0, facts) == [a1, b1]


def test_a_held_ticket_goes_once_it_waited_group_wait_s() -> None:
    room = WaitingRoom(limits(group_wait_s=30.0))
    facts = facts_of({"a": warm(slots=1), "b": cold(), "c": cold()})
    a1 = offer(room, "a", NORMAL, 0.0)
    assert room.choose(0.0, facts) == [a1]  # a's slot stays busy from here on
    offer(room, "a", NORMAL, 0.5)  # warm work still waiting
    b1 = offer(room, "b", NORMAL, 1.0)
    c1 = offer(room, "c", NORMAL, 3.0)
    assert room.choose(30.9, facts) == []
    assert room.next_check(30.9, facts) == 31.0
    assert room.choose(31.0, facts) == [b1]  # b waited group_wait_s; c not yet
    assert room.choose(32.9, facts) == []
    assert room.choose(33.0, facts) == [c1]


def test_a_cold_model_that_fits_is_never_held() -> None:
    room = WaitingRoom(limits(group_wait_s=30.0))
    facts = facts_of({"a": warm(slots=1), "b": cold(fits=True)})
    a1 = offer(room, "a", NORMAL, 0.0)
    offer(room, "a", NORMAL, 0.0)
    b1 = offer(room, "b", NORMAL, 1.0)
    assert room.choose(1.0, facts) == [a1, b1]


def test_a_cold_model_chosen_counts_as_warm_for_the_rest_of_the_round() -> None:
    room = WaitingRoom(limits(group_wait_s=30.0))
    table = {"b": cold(slots=2), "c": cold()}
    facts = facts_of(table)
    b1 = offer(room, "b", NORMAL, 0.0)
    c1 = offer(room, "c", NORMAL, 1.0)
    b2 = offer(room, "b", NORMAL, 2.0)
    b3 = offer(room, "b", NORMAL, 3.0)
    # b1 starts b's load and b2 joins it, ahead of the older c1: c would start a
    # second swap while b (now loading) still has b3 queued, so c is held
    assert room.choose(3.0, facts) == [b1, b2]
    assert c1.state is b3.state is TicketState.WAITING
    room.finish(b1)
    room.finish(b2)
    # b is loading now; once its queue is empty, c may start its swap
    table["b"] = warm(slots=2)
    assert room.choose(4.0, facts) == [b3, c1]


def test_a_swap_waits_while_another_model_loads() -> None:
    room = WaitingRoom(limits(group_wait_s=2.0))
    table = {"b": ModelFacts(1, warm=False, accepting=True, fits_cold=False, other_loading=True)}
    facts = facts_of(table)
    b1 = offer(room, "b", NORMAL, 0.0)
    assert room.choose(100.0, facts) == []  # long past group_wait_s: still one swap at a time
    table["b"] = cold()  # the other load ended
    assert room.choose(100.0, facts) == [b1]


def test_one_swap_starts_per_round_and_its_model_takes_its_queue() -> None:
    room = WaitingRoom(limits(group_wait_s=0.0))
    facts = facts_of({"b": cold(slots=2), "c": cold()})
    b1 = offer(room, "b", NORMAL, 0.0)
    c1 = offer(room, "c", NORMAL, 1.0)
    b2 = offer(room, "b", NORMAL, 2.0)
    assert room.choose(3.0, facts) == [b1, b2]  # b2 joins b's load; c waits for it
    assert c1.state is TicketState.WAITING


def test_a_cold_model_that_fits_is_not_held_by_another_load() -> None:
    room = WaitingRoom(limits())
    facts = facts_of(
        {"b": ModelFacts(1, warm=False, accepting=True, fits_cold=True, other_loading=True)}
    )
    b1 = offer(room, "b", NORMAL, 0.0)
    assert room.choose(0.0, facts) == [b1]


def test_high_priority_is_held_neither_for_grouping_nor_for_another_load() -> None:
    room = WaitingRoom(limits(group_wait_s=30.0))
    table = {
        "a": warm(slots=1),
        "b": ModelFacts(1, warm=False, accepting=True, fits_cold=False, other_loading=True),
    }
    facts = facts_of(table)
    a1 = offer(room, "a", NORMAL, 0.0)
    assert room.choose(0.0, facts) == [a1]
    offer(room, "a", NORMAL, 0.5)  # warm work waiting: grouping pressure
    normal = offer(room, "b", NORMAL, 1.0)
    high = offer(room, "b", HIGH, 2.0)
    assert room.choose(2.0, facts) == [high]
    assert normal.state is TicketState.WAITING


def test_a_batch_gathers_until_its_time() -> None:
    room = WaitingRoom(replace(limits(group_wait_s=0.0), batch_s=(0.0, 10.0, 0.0)))
    facts = facts_of({"b": cold(slots=3), "c": cold(slots=2)})
    b1 = offer(room, "b", NORMAL, 0.0)
    assert room.choose(5.0, facts) == []
    assert room.next_check(5.0, facts) == 10.0  # the batch's time runs out
    b2 = offer(room, "b", NORMAL, 6.0)
    assert room.choose(9.9, facts) == []
    assert room.choose(10.0, facts) == [b1, b2]  # one load serves both

    room = WaitingRoom(replace(limits(group_wait_s=0.0), batch_s=(0.0, 10.0, 0.0)))
    c1 = offer(room, "c", NORMAL, 0.0)
    c2 = offer(room, "c", NORMAL, 1.0)
    offer(room, "c", NORMAL, 2.0)
    assert room.choose(9.0, facts) == []  # more than its slots, still gathering
    assert room.choose(10.0, facts) == [c1, c2]  # the third runs when a slot frees


def test_a_batch_time_holds_only_its_priority_and_only_swaps() -> None:
    facts = facts_of({"a": warm(), "b": cold(slots=2), "c": cold(fits=True)})
    room = WaitingRoom(replace(limits(group_wait_s=0.0), batch_s=(0.0, 0.0, 30.0)))
    a1 = offer(room, "a", LOW, 0.0)  # warm: nothing to batch
    c1 = offer(room, "c", LOW, 0.0)  # cold, but fits without a swap
    b1 = offer(room, "b", LOW, 0.0)  # needs a swap: gathers
    assert room.choose(0.0, facts) == [a1, c1]
    assert b1.state is TicketState.WAITING

    room = WaitingRoom(replace(limits(group_wait_s=0.0), batch_s=(0.0, 0.0, 30.0)))
    b2 = offer(room, "b", NORMAL, 0.0)  # normal has no batch time
    assert room.choose(0.0, facts) == [b2]


def test_a_draining_model_does_not_hold_cold_ones() -> None:
    room = WaitingRoom(limits(group_wait_s=30.0))
    table = {"a": ModelFacts(1, warm=True, accepting=False, fits_cold=False), "b": cold()}
    offer(room, "a", NORMAL, 0.0)
    b1 = offer(room, "b", NORMAL, 1.0)
    assert room.choose(1.0, facts_of(table)) == [b1]


# --- drains --------------------------------------------------------------------------------
def test_a_model_not_accepting_gets_nothing_until_it_accepts_again() -> None:
    room = WaitingRoom(limits())
    table = {"a": ModelFacts(2, warm=True, accepting=False, fits_cold=False), "b": warm()}
    facts = facts_of(table)
    a1 = offer(room, "a", HIGH, 0.0)
    b1 = offer(room, "b", LOW, 1.0)
    assert room.choose(2.0, facts) == [b1]
    assert room.choose(3.0, facts) == []
    assert a1.state is TicketState.WAITING
    table["a"] = warm(slots=2)
    assert room.choose(4.0, facts) == [a1]


# --- deadlines -----------------------------------------------------------------------------
def test_expire_returns_tickets_past_their_deadline_and_they_leave() -> None:
    room = WaitingRoom(limits(timeout_s=(10.0, 20.0, 30.0)))
    high = offer(room, "a", HIGH, 0.0)
    normal = offer(room, "a", NORMAL, 0.0)
    low = offer(room, "a", LOW, 0.0)
    assert room.expire(9.9) == []
    assert room.expire(10.0) == [high]
    assert high.state is TicketState.DONE
    assert room.depth(HIGH) == 0
    assert len(room) == 2
    assert room.expire(100.0) == [normal, low]
    assert len(room) == 0
    assert room.depth(NORMAL) == room.depth(LOW) == 0
    # an expired ticket is never dispatched
    assert room.choose(100.0, facts_of({"a": warm(5)})) == []
    # and its place in the bounded queue is free again
    room2 = WaitingRoom(limits(max_waiting=(1, 1, 1), timeout_s=(10.0, 10.0, 10.0)))
    offer(room2, "a", NORMAL, 0.0)
    room2.expire(10.0)
    offer(room2, "a", NORMAL, 10.0)


def test_running_tickets_never_expire() -> None:
    room = WaitingRoom(limits(timeout_s=(10.0, 10.0, 10.0)))
    t = offer(room, "a", NORMAL, 0.0)
    assert room.choose(1.0, facts_of({"a": warm()})) == [t]
    assert room.expire(1e9) == []
    assert t.state is TicketState.RUNNING
    assert room.in_flight == 1
    assert room.running("a") == 1


def test_a_long_wait_does_not_keep_the_tickets_dispatched_after_it() -> None:
    # One request waits for a busy model while thousands to another model come
    # and go; their deadlines are later than its own, so they sit below it in
    # the deadline heap. The room must not keep them all alive meanwhile.
    room = WaitingRoom(limits(max_waiting=(10, 10, 10), timeout_s=(300.0, 300.0, 300.0)))
    facts = facts_of({"busy": warm(slots=1), "fast": warm(slots=64)})
    offer(room, "busy", NORMAL, 0.0)
    stuck = offer(room, "busy", NORMAL, 0.0)
    room.choose(0.0, facts)
    gone = []
    for i in range(5000):
        now = 0.001 * (i + 1)
        ticket = offer(room, "fast", NORMAL, now)
        gone.append(weakref.ref(ticket))
        del ticket
        for chosen in room.choose(now, facts):
            room.finish(chosen)
        room.next_check(now, facts)
    assert sum(1 for ref in gone if ref() is not None) < 200
    # and the waiting one still expires on time
    assert stuck.state is TicketState.WAITING
    assert room.expire(300.0) == [stuck]


def test_unbounded_tickets_without_a_deadline_never_expire() -> None:
    room = WaitingRoom(limits(timeout_s=(1.0, 1.0, 1.0)))
    job = offer(room, "a", LOW, 0.0, bounded=False)
    timed_job = offer(room, "a", LOW, 0.0, bounded=False, deadline=5.0)
    assert room.expire(1e9) == [timed_job]
    assert job.state is TicketState.WAITING
    assert len(room) == 1


# --- withdraw ------------------------------------------------------------------------------
def test_withdraw_a_waiting_ticket_removes_it() -> None:
    room = WaitingRoom(limits(max_waiting=(1, 1, 1)))
    facts = facts_of({"a": warm(slots=1)})
    busy = offer(room, "a", HIGH, 0.0)
    room.choose(0.0, facts)
    gone = offer(room, "a", NORMAL, 1.0)
    assert room.depth(NORMAL) == 1
    room.withdraw(gone)
    assert gone.state is TicketState.DONE
    assert room.depth(NORMAL) == 0
    assert len(room) == 0
    assert room.waiting_for("a") == 0
    nxt = offer(room, "a", NORMAL, 2.0)  # its bounded place is free again
    room.finish(busy)
    assert room.choose(3.0, facts) == [nxt]
    room.finish(nxt)
    assert room.choose(4.0, facts) == []
    assert room.expire(1e9) == []  # withdrawn tickets do not expire either
    room.withdraw(gone)  # twice: nothing changes
    assert len(room) == 0


def test_withdraw_a_running_ticket_frees_its_slot() -> None:
    room = WaitingRoom(limits())
    facts = facts_of({"a": warm(slots=1)})
    first = offer(room, "a", NORMAL, 0.0)
    second = offer(room, "a", NORMAL, 1.0)
    assert room.choose(1.0, facts) == [first]
    room.withdraw(first)
    assert first.state is TicketState.DONE
    assert room.in_flight == 0
    assert room.running("a") == 0
    assert room.choose(2.0, facts) == [second]


# --- next_check ----------------------------------------------------------------------------
def test_next_check_is_none_for_an_empty_room() -> None:
    assert WaitingRoom(limits()).next_check(0.0, facts_of({})) is None


def test_next_check_is_the_earliest_deadline() -> None:
    room = WaitingRoom(limits(timeout_s=(60.0, 300.0, 900.0)))
    facts = facts_of({"a": ModelFacts(1, warm=True, accepting=False, fits_cold=False)})
    offer(room, "a", NORMAL, 0.0)  # deadline 300
    offer(room, "a", HIGH, 10.0)  # deadline 70
    assert room.next_check(10.0, facts) == 70.0
    room.expire(70.0)
    assert room.next_check(70.0, facts) == 300.0


def test_next_check_is_the_group_wait_expiry_of_a_held_ticket() -> None:
    room = WaitingRoom(limits(group_wait_s=20.0))
    facts = facts_of({"a": warm(slots=1), "b": cold()})
    a1 = offer(room, "a", NORMAL, 0.0)
    assert room.choose(0.0, facts) == [a1]
    offer(room, "a", NORMAL, 1.0)
    offer(room, "b", NORMAL, 5.0)
    assert room.choose(6.0, facts) == []
    assert room.next_check(6.0, facts) == 25.0
    # past it, only deadlines remain: a2's is 1001 (a stale entry for the running
    # a1 may wake the room a little earlier, which is harmless)
    later = room.next_check(25.0, facts)
    assert later is not None
    assert 25.0 < later <= 1001.0


# --- bookkeeping under random events -----------------------------------------------------
MODELS = ("a", "b", "c")
SLOTS = {"a": 1, "b": 2, "c": 3}
LIMITS = limits(
    max_waiting=(3, 4, 2),
    timeout_s=(5.0, 10.0, 20.0),
    aging_s=4.0,
    group_wait_s=3.0,
    max_in_flight=4,
)


class RoomMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.room = WaitingRoom(LIMITS)
        self.now = 0.0
        self.tickets: list[Ticket] = []
        self.facts = {m: warm(SLOTS[m]) for m in MODELS}

    def _bounded_waiting(self, priority: Priority) -> int:
        return sum(
            1
            for t in self.tickets
            if t.priority is priority and t.bounded and t.state is TicketState.WAITING
        )

    @rule(dt=st.floats(0, 5))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule(
        model=st.sampled_from(MODELS),
        priority=st.sampled_from(list(Priority)),
        bounded=st.booleans(),
    )
    def offer(self, model: str, priority: Priority, bounded: bool) -> None:
        ticket = Ticket(model, priority, self.now, bounded=bounded)
        full = bounded and self._bounded_waiting(priority) >= LIMITS.max_waiting[priority]
        if full:
            with pytest.raises(QueueFull):
                self.room.offer(ticket)
        else:
            self.room.offer(ticket)
            self.tickets.append(ticket)

    @rule(
        model=st.sampled_from(MODELS),
        warm_=st.booleans(),
        accepting=st.booleans(),
        fits=st.booleans(),
    )
    def change_facts(self, model: str, warm_: bool, accepting: bool, fits: bool) -> None:
        self.facts[model] = ModelFacts(SLOTS[model], warm_, accepting, fits)

    @rule()
    def choose(self) -> None:
        before = {t.id: t.state for t in self.tickets}
        chosen = self.room.choose(self.now, facts_of(self.facts))
        assert len({t.id for t in chosen}) == len(chosen)
        for t in chosen:
            assert before[t.id] is TicketState.WAITING
            assert t.state is TicketState.RUNNING
            assert self.facts[t.model].accepting

    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        running = [t for t in self.tickets if t.state is TicketState.RUNNING]
        if running:
            self.room.finish(data.draw(st.sampled_from(running)))

    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        if self.tickets:
            self.room.withdraw(data.draw(st.sampled_from(self.tickets)))

    @rule()
    def expire(self) -> None:
        before = {t.id: t.state for t in self.tickets}
        for t in self.room.expire(self.now):
            assert before[t.id] is TicketState.WAITING
            assert t.deadline <= self.now
            assert t.state is TicketState.DONE
        for t in self.tickets:
            if t.state is TicketState.WAITING:
                assert t.deadline > self.now

    @invariant()
    def bookkeeping(self) -> None:
        running = [t for t in self.tickets if t.state is TicketState.RUNNING]
        waiting = [t for t in self.tickets if t.state is TicketState.WAITING]
        assert self.room.in_flight == len(running)
        assert self.room.in_flight <= LIMITS.max_in_flight
        for m in MODELS:
            n = sum(1 for t in running if t.model == m)
            assert self.room.running(m) == n
            assert n <= SLOTS[m]
            assert self.room.waiting_for(m) == sum(1 for t in waiting if t.model == m)
        assert len(self.room) == len(waiting)
        for p in Priority:
            assert self.room.depth(p) == sum(1 for t in waiting if t.priority is p)
            assert self._bounded_waiting(p) <= LIMITS.max_waiting[p]


RoomMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
test_room_bookkeeping = RoomMachine.TestCase
