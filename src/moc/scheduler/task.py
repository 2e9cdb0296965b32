"""The scheduler: the one owner of the waiting room.

The room is read and changed only inside :meth:`Scheduler._step`, a
synchronous function with no ``await`` in it: it applies what was posted
(offers, withdrawals) in order, expires tickets past their deadline, and asks
the room which tickets run next, resolving their futures. On the event loop's
one thread every step is therefore atomic, and the room needs no lock.

A step runs at once when a request posts to it (an offer, or a withdrawal
when it ends), so a request that finds room is admitted without a trip
through another task; the scheduler task ``_run`` runs a step when a timer
(the next deadline or end of a grouping wait) fires or when a model's state
changes (:meth:`poke`).

A request that is cancelled while it waits (its client went away, or
shutdown) leaves the queue; one that ran gives its slot back with
:meth:`Scheduler.leave`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from moc.clock import Clock
from moc.errors import MocError, QueueTimeout, ShuttingDown
from moc.scheduler.waiting import Facts, Limits, Priority, Ticket, TicketState, WaitingRoom

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        limits: Limits,
        facts: Facts,
        clock: Clock,
    ) -> None:
        self.room = WaitingRoom(limits)  # read-only outside _step (depths for metrics)
        self._facts = facts
        self._clock = clock
        self._futures: dict[int, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler")

    def poke(self) -> None:
        """Something the room's decisions depend on changed (a model's state)."""
        self._wake.set()

    async def enter(self, model: str, priority: Priority, *, bounded: bool = True) -> Ticket:
        """Wait for the request's turn; its slot is held until :meth:`leave`.

        Raises QueueFull at once when its priority's queue is full,
        QueueTimeout when it waited past its deadline, ShuttingDown on close.
        A caller cancelled while it waits leaves the queue.
        """
        if self._closed:
            raise ShuttingDown("moc is shutting down; no new requests are queued")
        ticket = Ticket(model, priority, self._clock.now(), bounded=bounded)
        future = asyncio.get_running_loop().create_future()
        self._futures[ticket.id] = future
        self._offer(ticket)
        try:
            await future
        except BaseException:
            self.leave(ticket)
            raise
        return ticket

    def leave(self, ticket: Ticket) -> None:
        """The request is done (or gone): its place or its slot is freed."""
        self._futures.pop(ticket.id, None)
        self.room.withdraw(ticket)
        if not self._closed:
            self._step()

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

    # --- the steps ---------------------------------------------------------------------
    def _offer(self, ticket: Ticket) -> None:
        try:
            self.room.offer(ticket)
        except MocError as exc:
            ticket.state = TicketState.DONE
            self._resolve(ticket, exc)
            return
        self._step()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._timer_at = None  # fired, or about to be set again
            try:
                self._step()
            except Exception:  # a bug here must not stop every request
                log.error("scheduler step failed", exc_info=True)

    def _step(self) -> None:
        room = self.room
        now = self._clock.now()
        for ticket in room.expire(now):
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
        """Wake the task at ``at`` (the earliest moment the room may decide anew)."""
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, at - now) + 0.001, self._wake.set)
