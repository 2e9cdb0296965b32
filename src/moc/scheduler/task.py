"""The scheduler task: the one owner of the waiting room.

Handlers never touch the room. :meth:`Scheduler.admit` posts the request's
ticket to an inbox and waits on a future; the task ``_run`` applies the inbox
in order, expires tickets past their deadline, and asks the room which tickets
run next, resolving their futures. Nothing awaits between reading the room
and changing it, so the room needs no lock.

A handler that is cancelled (its client went away, or shutdown) posts a
withdrawal from ``admit``'s ``finally``: a waiting ticket leaves the queue, a
running one gives its slot back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from enum import Enum

from moc.clock import Clock
from moc.errors import MocError, QueueTimeout, ShuttingDown
from moc.scheduler.waiting import Facts, Limits, Priority, Ticket, TicketState, WaitingRoom
from moc.telemetry.logs import event

log = logging.getLogger(__name__)


class _Op(Enum):
    OFFER = 1
    WITHDRAW = 2


class Scheduler:
    def __init__(
        self,
        limits: Limits,
        facts: Facts,
        clock: Clock,
        on_expired: Callable[[Ticket], None] = lambda t: None,
    ) -> None:
        self.room = WaitingRoom(limits)  # read-only outside the task (depths for metrics)
        self._facts = facts
        self._clock = clock
        self._on_expired = on_expired
        self._inbox: deque[tuple[_Op, Ticket]] = deque()
        self._futures: dict[int, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler")

    def poke(self) -> None:
        """Something the room's decisions depend on changed (a model's state)."""
        self._wake.set()

    @contextlib.asynccontextmanager
    async def admit(
        self, model: str, priority: Priority, *, bounded: bool = True
    ) -> AsyncIterator[Ticket]:
        """Wait for the request's turn; its slot is held until the block ends.

        Raises QueueFull at once when its priority's queue is full,
        QueueTimeout when it waited past its deadline, ShuttingDown on close.
        """
        if self._closed:
            raise ShuttingDown("moc is shutting down; no new requests are queued")
        ticket = Ticket(model, priority, self._clock.now(), bounded=bounded)
        future = asyncio.get_running_loop().create_future()
        self._futures[ticket.id] = future
        self._post(_Op.OFFER, ticket)
        try:
            await future
            yield ticket
        finally:
            self._futures.pop(ticket.id, None)
            self._post(_Op.WITHDRAW, ticket)

    async def close(self) -> None:
        """Refuse new requests and answer every waiting one with ShuttingDown."""
        self._closed = True
        for future in self._futures.values():
            if not future.done():
                future.set_exception(ShuttingDown("moc is shutting down; the request was not sent"))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._timer is not None:
            self._timer.cancel()

    # --- the task ----------------------------------------------------------------------
    def _post(self, op: _Op, ticket: Ticket) -> None:
        self._inbox.append((op, ticket))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._step()
            except Exception as exc:  # a bug here must not stop every request
                event(log, logging.ERROR, "scheduler step failed", error=repr(exc))
                log.debug("scheduler step failed", exc_info=exc)

    def _step(self) -> None:
        room = self.room
        while self._inbox:
            op, ticket = self._inbox.popleft()
            if op is _Op.WITHDRAW:
                room.withdraw(ticket)
                continue
            try:
                room.offer(ticket)
            except MocError as exc:
                ticket.state = TicketState.DONE
                self._resolve(ticket, exc)
        now = self._clock.now()
        for ticket in room.expire(now):
            self._on_expired(ticket)
            waited = now - ticket.arrived
            self._resolve(
                ticket,
                QueueTimeout(
                    f"the request waited {waited:.1f} s in the {ticket.priority.label}-priority "
                    f"queue for model {ticket.model} and was not sent (limit "
                    f"gateway.queues.{ticket.priority.label}.timeout_s)",
                    model=ticket.model,
                    waited_s=round(waited, 3),
                    priority=ticket.priority.label,
                ),
            )
        for ticket in room.choose(now, self._facts):
            self._resolve(ticket, None)
        self._arm(room.next_check(now, self._facts), now)

    def _resolve(self, ticket: Ticket, exc: MocError | None) -> None:
        future = self._futures.get(ticket.id)
        if future is None or future.done():
            return
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)

    def _arm(self, at: float | None, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, at - now) + 0.001, self._wake.set)
