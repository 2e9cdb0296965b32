"""The database's checkpoints: they keep the WAL bounded, leave no thread
behind, and never cost a committed write (kill -9 right after commits)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from moc.store.sqlite import CHECKPOINT_AFTER_COMMITS, FORCE_AFTER_COMMITS, Database

WAL_FRAME = 4096 + 24


def write_rows(db: Database, n: int) -> None:
    db.conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")
    for i in range(n):
        with db.transaction() as conn:
            conn.execute("INSERT INTO t (v) VALUES (?)", (os.urandom(64),))
        del i


def test_the_wal_stays_bounded_under_steady_writes(tmp_path: Path) -> None:
    db = Database(tmp_path / "moc.db")
    try:
        write_rows(db, 4 * FORCE_AFTER_COMMITS)
        # Each commit here writes at most three pages; a WAL that never started
        # over would hold all 4 x FORCE_AFTER_COMMITS commits.
        bound = (FORCE_AFTER_COMMITS + CHECKPOINT_AFTER_COMMITS) * 3 * WAL_FRAME
        assert (tmp_path / "moc.db-wal").stat().st_size <= bound
    finally:
        db.close()  # its checkpoint thread ends with it, whatever the outcome


def test_close_stops_the_checkpoint_worker(tmp_path: Path) -> None:
    db = Database(tmp_path / "moc.db")
    write_rows(db, 2 * CHECKPOINT_AFTER_COMMITS)
    db.close()
    assert "moc-checkpoint" not in {t.name for t in threading.enumerate()}
    assert not (tmp_path / "moc.db-wal").exists()  # checkpointed back as the file closed


CHILD = """
import os, signal, sys
from pathlib import Path
from moc.store.sqlite import Database
db = Database(Path(sys.argv[1]))
db.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
for i in range(int(sys.argv[2])):
    with db.transaction() as conn:
        conn.execute("INSERT INTO t (v) VALUES (?)", (os.urandom(64),))
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_every_commit_survives_kill_9_across_checkpoints(tmp_path: Path) -> None:
    n = 3 * CHECKPOINT_AFTER_COMMITS + 7
    path = tmp_path / "moc.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(n)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    assert done.stdout.strip() == "committed"
    db = Database(path)
    assert db.conn.execute("SELECT count(*) FROM t").fetchone() == (n,)
    db.close()
