"""Events fanned out to whoever watches a key (a lease, a learning job), each
watcher with a queue of its own. Owned by the event loop; a watcher too slow
to keep up loses what its full queue cannot take, never blocks the publisher."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Generic, TypeVar

K = TypeVar("K")
T = TypeVar("T")


class Fanout(Generic[K, T]):
    def __init__(self, maxsize: int = 10_000) -> None:
        self._maxsize = maxsize
        self._queues: dict[K, list[asyncio.Queue[T]]] = {}

    def subscribe(self, key: K) -> asyncio.Queue[T]:
        queue: asyncio.Queue[T] = asyncio.Queue(maxsize=self._maxsize)
        self._queues.setdefault(key, []).append(queue)
        return queue

    def unsubscribe(self, key: K, queue: asyncio.Queue[T]) -> None:
        queues = self._queues.get(key, [])
        if queue in queues:
            queues.remove(queue)
        if not queues:
            self._queues.pop(key, None)

    def publish(self, key: K, *items: T, last: bool = False) -> None:
        """``items`` to every watcher of ``key``; ``last``: its watchers are
        dropped after these (the key's events have ended)."""
        queues = self._queues.pop(key, []) if last else self._queues.get(key, [])
        for queue in queues:
            for item in items:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(item)
