"""Group commit: the writes of one event-loop tick in one transaction.

A staged write runs at once, inside a SAVEPOINT of the tick's transaction (a
write that fails undoes only itself and raises ``StoreUnavailable`` then), and
hands back a future of its own that is done when the transaction commits, or
fails with ``StoreUnavailable`` when the commit does. The commit runs from
``call_soon``, so every write staged by the callbacks of this turn of the loop
shares it: at 16 concurrent lease clients, several writes pay for one BEGIN
and one COMMIT (about 15 us a write saved, measured alone).

The caller applies its write to memory when it stages it, so that no other
decision can take what it decided on, and answers its client only once its
future is done: acknowledged still means committed. When the commit fails,
the batch calls each write's ``undo``, which takes the write back out of
memory; it is called by the batch, not by the waiting caller, so a caller
cancelled meanwhile (its client went away) still has its write undone.

So only writes whose undo is always safe are staged: a grant (undone, it frees
memory) or a renew (undone, the old deadline); never one that frees memory
others may have taken meanwhile (a release, a revocation). Those use
``Database.transaction``, which commits any open batch first, so writes reach
the file in the order they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from moc.errors import StoreUnavailable


@dataclass
class _Batch:
    """The writes of the open transaction: who waits, and how to undo each."""

    done: list[asyncio.Future[None]] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)


class GroupCommit:
    def __init__(
        self, conn: sqlite3.Connection, path: Path, committed: Callable[[int], None]
    ) -> None:
        self._conn = conn
        self._path = path
        self._committed = committed  # told how many writes each commit carried
        self._batch: _Batch | None = None

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailable:
        return StoreUnavailable(f"cannot write the state database {self._path}: {exc}")

    @contextmanager
    def stage(self, undo: Callable[[], None]) -> Iterator[asyncio.Future[None]]:
        """One write in the tick's transaction; yields the future of its commit.
        ``undo`` is called if that commit fails (not if the write itself does:
        then nothing is staged and StoreUnavailable is raised here)."""
        conn = self._conn
        loop = asyncio.get_running_loop()
        try:
            if self._batch is None:
                conn.execute("BEGIN IMMEDIATE")
                self._batch = _Batch()
                loop.call_soon(self.flush)
            batch = self._batch
            conn.execute("SAVEPOINT staged")
            done = loop.create_future()
            try:
                yield done
            except BaseException:
                conn.execute("ROLLBACK TO staged")
                conn.execute("RELEASE staged")
                raise
            conn.execute("RELEASE staged")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        batch.done.append(done)
        batch.undo.append(undo)

    def flush(self) -> None:
        """Commit the open batch, if any, and tell its writers how it went."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            for undo in reversed(batch.undo):  # memory back as the file has it
                undo()
            for done in batch.done:
                if not done.done():  # a writer cancelled meanwhile waits no more
                    done.set_exception(self._unavailable(exc))
            return
        for done in batch.done:
            if not done.done():
                done.set_result(None)
        self._committed(len(batch.done))
