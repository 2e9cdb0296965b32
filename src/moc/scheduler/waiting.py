"""The waiting room: bounded queues per priority, and what runs next. Pure.

No I/O, no clock of its own, no asyncio: every method that needs the time is
given ``now``. Only the scheduler (:mod:`moc.scheduler.task`) changes it;
the stats page and the metrics read its counts.


Rules, in the order :meth:`WaitingRoom.choose` applies them:

- **Bulkhead.** At most ``max_in_flight`` requests run at once, all models
  together.
- **Per-model slots.** A model runs at most ``slots`` requests at once (the
  backend's parallel slots). A model whose slots are busy does not hold up
  requests for other models: each (priority, model) pair has its own FIFO,
  and only their heads compete.
- **Priority with aging.** The head with the best effective priority goes
  first, oldest first among equals. A request rises one level for every
  ``aging_s`` it has waited, so low priority cannot starve.
- **One swap at a time.** A request whose model is cold (not loaded or
  loading) and would need a swap waits while another model is loading:
  concurrent swaps compete for the same memory, each may evict what the
  other needs next, and waiting lets the requests for the next cold model
  gather so that its one load serves them all. They go in the room's order
  (priority, then age) when the load ends.
- **Grouping.** Such a request is also held back while warm models still
  have requests waiting, for at most ``group_wait_s``; so A B A C is served
  A A B C and a swap serves a batch. A cold model that fits without evicting
  anything is never held.
- **High priority is not held** by either rule: it trades loads for latency.
- **Batching** (``gateway.queues.<priority>.batch_s``, 0 by default). A
  request of a priority with a batch time, whose model needs a swap, waits
  until the oldest such request for its model and priority has waited that
  long, however many have gathered (one load serves them in turn, not only
  as many as the model has slots): fewer loads for longer waits, a trade for
  throughput work.
- **Drains.** A model being drained or evicted takes no new requests; they
  wait until it is loaded again.
- **Deadlines.** A request not dispatched by its deadline leaves the room
  (:meth:`expire`), to be answered ``queue_timeout``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum

from moc.config import GatewayConfig
from moc.errors import InvalidRequest, QueueFull


class Priority(IntEnum):
    HIGH = 0
    NORMAL = 1
    LOW = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str, field_name: str = "priority") -> Priority:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise InvalidRequest(
                field_name, "must be high, normal or low", value=text, limit="high|normal|low"
            ) from None


class TicketState(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"  # finished, withdrawn or expired


@dataclass(eq=False)
class Ticket:
    """One request's place in the room."""

    model: str
    priority: Priority
    arrived: float
    deadline: float = math.inf
    bounded: bool = True  # counts against the priority's max_waiting (jobs do not)
    id: int = field(default_factory=itertools.count().__next__)
    state: TicketState = TicketState.WAITING

    def level(self, now: float, aging_s: float) -> int:
        """The priority it competes at now: one level better per aging_s waited."""
        return max(0, int(self.priority) - int((now - self.arrived) / aging_s))


@dataclass(frozen=True)
class ModelFacts:
    """What the room needs to know about a model when it decides."""

    slots: int  # requests it may run at once
    warm: bool  # loaded or loading: a request does not start a swap
    accepting: bool  # False while it is drained or evicted
    fits_cold: bool  # cold, but loading it now would evict nothing
    other_loading: bool = False  # another model's load that it would compete with is under way


@dataclass(frozen=True)
class Limits:
    max_waiting: tuple[int, int, int]  # by Priority
    timeout_s: tuple[float, float, float]
    aging_s: float
    group_wait_s: float
    max_in_flight: int
    batch_s: tuple[float, float, float] = (0.0, 0.0, 0.0)  # by Priority

    @classmethod
    def of(cls, config: GatewayConfig) -> Limits:
        q = (config.queues.high, config.queues.normal, config.queues.low)
        return cls(
            (q[0].max_waiting, q[1].max_waiting, q[2].max_waiting),
            (q[0].timeout_s, q[1].timeout_s, q[2].timeout_s),
            config.aging_s,
            config.group_wait_s,
            config.max_in_flight,
            (q[0].batch_s, q[1].batch_s, q[2].batch_s),
        )


Facts = Callable[[str], ModelFacts]
DEADLINES_SLACK = 64


class WaitingRoom:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        # (priority, model) → FIFO; withdrawn tickets stay until they reach the head
        self._lines: dict[tuple[Priority, str], deque[Ticket]] = {}
        self._waiting = [0, 0, 0]  # bounded tickets waiting, by priority
        self._waiting_all = [0, 0, 0]
        self._deadlines: list[tuple[float, int, Ticket]] = []
        self._compact_at = DEADLINES_SLACK  # heap size at which dead entries are dropped
        self._running: dict[str, int] = {}
        self.in_flight = 0

    # --- reading ---------------------------------------------------------------
    def depth(self, priority: Priority) -> int:
        return self._waiting_all[priority]

    def __len__(self) -> int:
        return sum(self._waiting_all)

    def running(self, model: str) -> int:
        return self._running.get(model, 0)

    def waiting_for(self, model: str) -> int:
        return sum(self._live(line) for (_, m), line in self._lines.items() if m == model)

    # --- events ------------------------------------------------------------------
    def offer(self, ticket: Ticket) -> None:
        """Queue the ticket, or raise QueueFull if its priority's queue is full."""
        p = ticket.priority
        cap = self.limits.max_waiting[p]
        if ticket.bounded and self._waiting[p] >= cap:
            raise QueueFull(
                f"the {p.label}-priority queue is full ({cap} requests waiting); "
                "retry later or raise gateway.queues." + p.label + ".max_waiting",
                retry_after_s=1.0,
                priority=p.label,
                limit=cap,
            )
        if ticket.bounded and ticket.deadline == math.inf:
            ticket.deadline = ticket.arrived + self.limits.timeout_s[p]
        self._lines.setdefault((p, ticket.model), deque()).append(ticket)
        self._count(ticket, +1)
        if ticket.deadline < math.inf:
            heapq.heappush(self._deadlines, (ticket.deadline, ticket.id, ticket))
            if len(self._deadlines) > self._compact_at:
                self._compact_deadlines()

    def withdraw(self, ticket: Ticket) -> None:
        """The client went away: a waiting ticket leaves, a running one finishes."""
        if ticket.state is TicketState.WAITING:
            ticket.state = TicketState.DONE
            self._count(ticket, -1)
        elif ticket.state is TicketState.RUNNING:
            self.finish(ticket)

    def finish(self, ticket: Ticket) -> None:
        if ticket.state is not TicketState.RUNNING:
            return
        ticket.state = TicketState.DONE
        self.in_flight -= 1
        left = self._running[ticket.model] - 1
        if left:
            self._running[ticket.model] = left
        else:
            del self._running[ticket.model]

    def expire(self, now: float) -> list[Ticket]:
        """Tickets whose deadline passed while waiting; they leave the room."""
        gone = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, ticket = heapq.heappop(self._deadlines)
            if ticket.state is TicketState.WAITING:
                ticket.state = TicketState.DONE
                self._count(ticket, -1)
                gone.append(ticket)
        return gone

    # --- the decision ------------------------------------------------------------
    def choose(self, now: float, facts: Facts) -> list[Ticket]:
        """The tickets to dispatch now, in order; they are marked running."""
        chosen: list[Ticket] = []
        known: dict[str, ModelFacts] = {}
        loading = False  # a ticket chosen in this round started a load
        while self.in_flight < self.limits.max_in_flight:
            heads = list(self._heads())
            if not heads:
                break
            for ticket in heads:
                if ticket.model not in known:
                    known[ticket.model] = facts(ticket.model)
            best: tuple[int, float] | None = None
            pick: Ticket | None = None
            for ticket in heads:
                if not self._may_run(ticket, known, heads, now, loading):
                    continue
                key = (ticket.level(now, self.limits.aging_s), ticket.arrived)
                if best is None or key < best:
                    best, pick = key, ticket
            if pick is None:
                break
            self._start(pick)
            chosen.append(pick)
            f = known[pick.model]
            if not f.warm:  # it is loading now, for the rest of this round
                known[pick.model] = replace(f, warm=True)
                loading = True
        return chosen

    def next_check(self, now: float, facts: Facts) -> float | None:
        """When the room may decide differently with no new event: the next
        deadline, or the moment a held request's grouping or batch wait runs out."""
        while self._deadlines and self._deadlines[0][2].state is not TicketState.WAITING:
            heapq.heappop(self._deadlines)  # dispatched or withdrawn: no longer a deadline
        times = [self._deadlines[0][0]] if self._deadlines else []

        for ticket in self._heads():
            f = facts(ticket.model)
            if not f.warm and not f.fits_cold:
                times.append(ticket.arrived + self.limits.group_wait_s)
                if batch_s := self.limits.batch_s[ticket.priority]:
                    times.append(ticket.arrived + batch_s)
        later = [t for t in times if t > now]
        return min(later) if later else None

    # --- inside ----------------------------------------------------------------------
    def _may_run(
        self,
        ticket: Ticket,
        known: dict[str, ModelFacts],
        heads: list[Ticket],
        now: float,
        loading: bool,
    ) -> bool:
        f = known[ticket.model]
        if not f.accepting or self.running(ticket.model) >= f.slots:
            return False
        if f.warm or f.fits_cold:
            return True
        if now - ticket.arrived < self.limits.batch_s[ticket.priority]:
            return False  # the batch is still gathering
        if ticket.priority is Priority.HIGH:
            return True
        if f.other_loading or loading:
            return False  # one swap at a time; the load's end wakes the room
        if now - ticket.arrived >= self.limits.group_wait_s:
            return True
        # A swap would start: hold it while warm models still have work queued.
        return not any(
            known[other.model].warm and known[other.model].accepting
            for other in heads
            if other.model != ticket.model
        )

    def _heads(self) -> Iterator[Ticket]:
        empty = []
        for key, line in self._lines.items():
            while line and line[0].state is not TicketState.WAITING:
                line.popleft()
            if line:
                yield line[0]
            else:
                empty.append(key)
        for key in empty:
            del self._lines[key]

    def _start(self, ticket: Ticket) -> None:
        line = self._lines[(ticket.priority, ticket.model)]
        assert line[0] is ticket
        line.popleft()
        ticket.state = TicketState.RUNNING
        self._count(ticket, -1)
        self.in_flight += 1
        self._running[ticket.model] = self._running.get(ticket.model, 0) + 1

    def _compact_deadlines(self) -> None:
        """Drop the entries of tickets that no longer wait.

        Entries leave the heap only from its top, so one ticket that waits
        long (for a busy model) would otherwise keep the entry, and the
        ticket, of every request dispatched after it for as long as it waits:
        80 MiB for five minutes at 1,000 requests/s. Rebuilding whenever the
        heap has doubled since the last rebuild keeps it within twice the
        waiting tickets, at amortized constant cost per offer.
        """
        self._deadlines = [e for e in self._deadlines if e[2].state is TicketState.WAITING]
        heapq.heapify(self._deadlines)
        self._compact_at = 2 * len(self._deadlines) + DEADLINES_SLACK

    def _count(self, ticket: Ticket, delta: int) -> None:
        self._waiting_all[ticket.priority] += delta
        if ticket.bounded:
            self._waiting[ticket.priority] += delta

    @staticmethod
    def _live(line: deque[Ticket]) -> int:
        return sum(1 for t in line if t.state is TicketState.WAITING)
