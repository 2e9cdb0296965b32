"""Where the two clients differ: how a held lease renews in the background.

The asyncio client renews from a task on the caller's loop, the synchronous
one from a daemon thread. Everything else in ``client.py`` is generated from
``aclient.py`` by ``scripts/unasync.py``, which turns ``AsyncTicker`` into
``ThreadTicker``; the two keep the same methods so that a rename is all it takes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable


class AsyncTicker:
    """Awaits ``tick`` every ``every_s`` seconds in a task, until it returns
    False or :meth:`stop` is awaited."""

    def __init__(self, tick: Callable[[], Awaitable[bool]], every_s: float, name: str) -> None:
        self._tick = tick
        self._every = every_s
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            if not await self._tick():
                return

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        # wait() does not raise the task's CancelledError, so a cancellation of
        # the caller itself still propagates instead of being swallowed here.
        await asyncio.wait([self._task])
        if not self._task.cancelled():
            self._task.result()  # a tick's unexpected error surfaces at exit


class ThreadTicker:
    """Calls ``tick`` every ``every_s`` seconds in a daemon thread, until it
    returns False or :meth:`stop` is called."""

    def __init__(self, tick: Callable[[], bool], every_s: float, name: str) -> None:
        self._tick = tick
        self._every = every_s
        self._stop = threading.Event()
        # A daemon: a program that exits without leaving the with block is not
        # kept alive by its lease; the TTL reclaims the memory.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            if not self._tick():
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()
