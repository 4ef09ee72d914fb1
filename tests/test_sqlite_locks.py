"""The SQLite queue never drops its own locks: opening a connection must not close a
descriptor of a database file this process already holds locks on (POSIX drops them all)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from pact_bot.jobs.sqlite_db import _connect


def test_a_new_connection_keeps_the_write_lock_of_an_open_one(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    first = _connect(db)
    first.execute("CREATE TABLE t (x)")
    first.execute("BEGIN IMMEDIATE")  # the write lock, held through POSIX locks on the file
    first.execute("INSERT INTO t VALUES (1)")
    _connect(db).close()  # as the queue does when it opens its reader or another writer

    probe = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(db)!r}, timeout=0, isolation_level=None)\n"
        "try:\n"
        "    c.execute('BEGIN IMMEDIATE')\n"
        "except sqlite3.OperationalError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    print('got the lock')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
    assert out.strip() == "database is locked"
    first.execute("COMMIT")
    assert sqlite3.connect(db).execute("SELECT x FROM t").fetchall() == [(1,)]


def test_the_database_file_is_created_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    _connect(db).close()
    assert oct(db.stat().st_mode & 0o777) == "0o600"
