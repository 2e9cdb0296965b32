"""The SQLite database file and its schema migrations.

WAL with ``synchronous=NORMAL``: a committed transaction survives the process
being killed (kill -9); only a power loss can take the last ones back. Writes
are small and run on the event-loop thread (about ten microseconds each),
which keeps "decide, persist, apply" free of awaits; the lease writes that may
be undone share one transaction per turn of the loop (:mod:`.group_commit`).

Checkpoints run off that thread. SQLite's automatic checkpoint (every 1000 WAL
pages) runs inside the COMMIT that crosses the mark, and costs two fsyncs (the
WAL, then the database file): about 4 ms on a quiet VM disk and several times
that on a busy one, paid by whichever request made that commit. So it is off,
and :class:`Checkpoints` asks a worker thread, with a connection of its own,
for a PASSIVE checkpoint every ``CHECKPOINT_AFTER_COMMITS`` commits; commits go
on meanwhile (a WAL writer never waits for a checkpointer). The loop's own
connection then checkpoints what was written since, in a quiet moment, so that
the WAL is wholly copied back and the next write starts it over: without that
step a WAL under steady writes is never complete and grows without bound.

The connections use the normal locking mode, since the worker needs one of
its own; exclusive mode made each commit about 6 us cheaper, much less than
the checkpoint stall it would bring back. The data directory lock still keeps
other moc processes out; the sqlite3 shell can read the file while moc runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moc.errors import StoreUnavailable
from moc.store.group_commit import GroupCommit

# One ordered list for every part's tables: ``PRAGMA user_version`` counts the
# scripts applied, so a script is appended and never edited or moved. The
# comment on each names the repository that reads and writes its tables.
MIGRATIONS: list[str] = [
    # 1: leases and fencing tokens (moc.leases.store)
    """
    CREATE TABLE leases (
        id TEXT PRIMARY KEY,
        device TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        holder TEXT NOT NULL,
        pid INTEGER,
        priority INTEGER NOT NULL,
        preemptible INTEGER NOT NULL,
        fencing_token INTEGER NOT NULL,
        ttl_s REAL NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'active',
        ended_at REAL
    );
    CREATE INDEX leases_state ON leases(state, ended_at);
    CREATE TABLE fencing (device TEXT PRIMARY KEY, last INTEGER NOT NULL);
    """,
    # 2: measured model sizes (moc.models.store), and the runtime processes moc has
    # started (moc.lifecycle.records)
    """
    CREATE TABLE learned_sizes (
        model TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        ctx INTEGER NOT NULL,
        parallel INTEGER NOT NULL,
        device_kind TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        measured_at REAL NOT NULL,
        PRIMARY KEY (model, fingerprint, ctx, parallel, device_kind)
    );
    CREATE TABLE runtimes (
        model TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        port INTEGER NOT NULL,
        device TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        started_at REAL NOT NULL
    );
    """,
    # 3: async jobs (moc.jobs.store)
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL,
        body BLOB NOT NULL,
        metadata BLOB,
        result BLOB,
        error BLOB,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        queued_at REAL,
        started_at REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_status ON jobs(status, priority, created_at);
    CREATE INDEX jobs_created ON jobs(created_at);
    """,
    # 4: yieldable leases (moc.leases.store)
    """
    ALTER TABLE leases ADD COLUMN yield_s REAL;
    """,
    # 5: learning jobs and what they were measured using (moc.learning.jobs.store)
    """
    CREATE TABLE learning_jobs (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        dataset TEXT,
        goal TEXT,
        created_at REAL NOT NULL,
        record BLOB NOT NULL
    );
    CREATE INDEX learning_jobs_status ON learning_jobs(status, seq);
    CREATE TABLE learning_sizes (
        key TEXT PRIMARY KEY,
        bytes INTEGER NOT NULL,
        measured_at REAL NOT NULL
    );
    """,
    # 6: datasets for learning jobs (moc.learning.datasets.store)
    """
    CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        format TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        rows INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX datasets_sha256 ON datasets(sha256);
    """,
    # 7: learning goals (moc.learning.goals.store)
    """
    CREATE TABLE goals (
        name TEXT PRIMARY KEY,
        weight REAL NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 8: the artifact registry (moc.artifacts.store)
    """
    CREATE TABLE artifacts (
        digest TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        kind TEXT NOT NULL,
        manifest BLOB NOT NULL,
        signature BLOB,
        signed_by TEXT,
        created_at REAL NOT NULL,
        UNIQUE (name, version)
    );
    """,
    # 9: who asked for a lease or a job (moc.leases.store, moc.jobs.store)
    """
    ALTER TABLE leases ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    """,
    # 10: API keys, the audit log, device use per owner and day (moc.auth.store)
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        models TEXT,
        limits TEXT NOT NULL,
        secret_hash BLOB NOT NULL,
        old_hash BLOB,
        old_until REAL,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        key_id TEXT NOT NULL,
        action TEXT NOT NULL,
        object TEXT NOT NULL,
        result TEXT NOT NULL,
        status INTEGER NOT NULL,
        details TEXT
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE TABLE device_use (
        owner TEXT NOT NULL,
        day TEXT NOT NULL,
        byte_seconds REAL NOT NULL,
        PRIMARY KEY (owner, day)
    );
    """,
]


# Counted in writes (a group commit of n writes counts n): a lease write is
# about three WAL pages, so 200 keep the WAL near 600.
CHECKPOINT_AFTER_COMMITS = 200
# Under steady writes there is no quiet moment: the connection's own
# checkpoint then comes after this many commits, which bounds the WAL's size
# (about 25 MB) and makes it rarer by ten than SQLite's own.
FORCE_AFTER_COMMITS = 2000
FINISH_WHEN_IDLE_S = 0.05
FORCED_WAIT_S = 0.5  # the most a forced checkpoint waits for the worker's round


class _Worker:
    """A thread that runs PASSIVE checkpoints when asked, with a connection it
    opens and alone uses: no sqlite3 object crosses threads. Started on the
    first request, so a database written little never has one."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wanted = threading.Event()
        self._stopping = False
        # Checkpoints finished. Written by the worker, read by the loop's
        # thread: one int, so each read and write is atomic under the GIL.
        self.finished = 0
        self._idle = threading.Event()  # set while no checkpoint of its runs
        self._idle.set()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="moc-checkpoint", daemon=True)
            self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            while True:
                self._wanted.wait()
                # Cleared before the work, so that a request or a stop that
                # comes while it runs is seen on the next turn, never lost.
                self._wanted.clear()
                if self._stopping:
                    return
                # On an error nothing is lost: the pages stay in the WAL, are
                # read from there, and the loop's own checkpoint copies them.
                self._idle.clear()
                try:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                finally:
                    self._idle.set()
                self.finished += 1
        finally:
            conn.close()

    def wait_idle(self, timeout_s: float) -> bool:
        """Until the checkpoint it runs, if any, is over; False on timeout."""
        return self._idle.wait(timeout_s)

    def stop(self) -> None:
        self._stopping = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join()


class Checkpoints:
    """When to checkpoint (see the module docstring).

    Owned by the :class:`Database`; ``committed`` is called on the connection's
    thread after each commit. Two kinds of checkpoint:

    - the worker's, every ``CHECKPOINT_AFTER_COMMITS`` commits: it copies the
      pages back and pays the fsyncs, while commits go on;
    - the connection's own, which lets the WAL start over: it runs once no
      commit came for ``FINISH_WHEN_IDLE_S``, or after the current callback
      once ``FORCE_AFTER_COMMITS`` commits went by without one. It finds only
      what was written since the worker's last round, but it does fsync, so
      it waits for a quiet moment where it can. A forced one that finds the
      worker at it waits up to ``FORCED_WAIT_S`` for its round to end.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._worker = _Worker(db.path)
        self._commits = 0
        self._done_at = 0  # commit count at the last complete checkpoint
        self._asked_at = 0  # commit count when the worker was last asked
        self._asked_round: int | None = None  # worker.finished then; None once it is back
        self._last_commit = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._finish_scheduled = False

    def committed(self, writes: int = 1) -> None:
        self._commits += writes
        if self._asked_round is not None and self._worker.finished > self._asked_round:
            self._asked_round = None
        if (
            self._asked_round is None
            and self._commits - max(self._asked_at, self._done_at) >= CHECKPOINT_AFTER_COMMITS
        ):
            self._asked_at = self._commits
            self._asked_round = self._worker.finished
            self._worker.request()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._commits - self._done_at >= FORCE_AFTER_COMMITS:
                self.finish()
            return
        if self._commits - self._done_at >= FORCE_AFTER_COMMITS:
            if not self._finish_scheduled:
                self._finish_scheduled = True
                loop.call_soon(self.finish)  # the request at hand answers first
            return
        self._last_commit = loop.time()
        if self._idle_timer is None:
            self._idle_timer = loop.call_later(FINISH_WHEN_IDLE_S, self._on_idle, loop)

    def _on_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        quiet_for = loop.time() - self._last_commit
        if quiet_for < FINISH_WHEN_IDLE_S:
            self._idle_timer = loop.call_later(FINISH_WHEN_IDLE_S - quiet_for, self._on_idle, loop)
            return
        self._idle_timer = None
        if self._done_at < self._commits:
            self.finish()

    def finish(self) -> None:
        """A PASSIVE checkpoint on the loop's connection. The only writer runs
        it between transactions, so it copies every page back and the next
        write starts the WAL over."""
        self._finish_scheduled = False
        if self._closed:
            return  # scheduled just before the database closed
        if self._db.conn.in_transaction:
            return  # the next commit tries again
        busy = self._passive()
        forced = self._commits - self._done_at >= FORCE_AFTER_COMMITS
        # Forced, and the worker is at it (slowly: a starved thread, a slow
        # disk): wait for it a moment rather than let the WAL grow on.
        if busy and forced and self._worker.wait_idle(FORCED_WAIT_S):
            busy = self._passive()
        if busy:
            return  # the worker is at it: the next commit tries again
        self._done_at = self._commits

    def _passive(self) -> bool:
        """One PASSIVE checkpoint; True when it could not copy every page (the
        worker is at it, or an error: the pages stay in the WAL, retried later)."""
        try:
            busy, _, _ = self._db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return True
        return bool(busy)

    def close(self) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._worker.stop()


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.checkpoints = Checkpoints(self)
        try:
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=2000")
            self.conn.execute("PRAGMA wal_autocheckpoint=0")  # Checkpoints does it
            self.group = GroupCommit(self.conn, path, self.transaction, self.checkpoints.committed)
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the state database {path}: {exc}") from exc

    def _migrate(self) -> None:
        (version,) = self.conn.execute("PRAGMA user_version").fetchone()
        if version > len(MIGRATIONS):
            raise StoreUnavailable(
                f"the state database {self.path} has schema version {version}, newer than this "
                f"moc understands ({len(MIGRATIONS)}); upgrade moc or use another data dir"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write, committed before it returns; any sqlite error
        becomes StoreUnavailable. A batch of staged writes still open is
        committed first, so that writes reach the file in the order made;
        if that commit fails, this write is refused too, since the caller
        decided it on memory that held the writes just undone."""
        if not self.group.flush():
            raise StoreUnavailable(
                f"cannot write the state database {self.path}: the writes before this "
                "one could not be stored"
            )
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:  # a failed COMMIT may leave it open
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot write the state database {self.path}: {exc}") from exc
        self.checkpoints.committed()

    def close(self) -> None:
        """Stop the checkpoint worker first: SQLite checkpoints the WAL into the
        database file and removes it as the last connection closes."""
        self.group.flush()
        self.checkpoints.close()
        self.conn.close()
