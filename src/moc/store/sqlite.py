"""The SQLite database file and its schema migrations.

WAL with ``synchronous=NORMAL``: a committed transaction survives the process
being killed (kill -9); only a power loss can take the last ones back. Writes
are small and run on the event-loop thread (about ten microseconds each),
which keeps "decide, persist, apply" free of awaits.

The connection holds the file in exclusive locking mode: the daemon is its only
user (the data directory is locked too), and skipping the shared-memory index
and per-transaction file locks makes each commit about a third cheaper. Inspect
the file with the sqlite3 shell while moc is stopped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moc.errors import StoreUnavailable

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
]


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=2000")
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
        """One atomic write; any sqlite error becomes StoreUnavailable."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot write the state database {self.path}: {exc}") from exc

    def close(self) -> None:
        self.conn.close()
