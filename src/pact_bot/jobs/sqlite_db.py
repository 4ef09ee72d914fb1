"""The SQLite queue's file: its schema, how a connection to it is opened, and its rows as `Job`.

One place that knows the tables, so the writer and the readers cannot disagree on them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from pact_bot.jobs.model import Job

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    repo TEXT NOT NULL,
    number INTEGER,
    installation_id INTEGER,
    delivery_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    task TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    pr_url TEXT,
    cost_usd REAL NOT NULL DEFAULT 0,
    turns INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS jobs_state_seq ON jobs(state, seq);
CREATE INDEX IF NOT EXISTS jobs_key_state ON jobs(key, state);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    job_id TEXT,
    body_sha256 TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries(received_at);
CREATE TABLE IF NOT EXISTS repo_config (
    repo TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""

# Files made before body hashes: the column and its unique index (NULLs never clash: acks,
# lost notices and old rows have none).
_BODY_HASH = "CREATE UNIQUE INDEX IF NOT EXISTS deliveries_body ON deliveries(body_sha256)"


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
    if "body_sha256" not in columns:
        conn.execute("ALTER TABLE deliveries ADD COLUMN body_sha256 TEXT")
    conn.execute(_BODY_HASH)


_COLUMNS = (
    "id, kind, key, repo, number, installation_id, delivery_id, sender, task, state, attempts, "
    "created_at, started_at, finished_at, error, pr_url, cost_usd, turns, cancel_requested, "
    "worker_id"
)
_COLUMN_NAMES = _COLUMNS.split(", ")
_UPDATABLE = {"cost_usd", "turns", "pr_url", "error"}


def _connect(path: Path) -> sqlite3.Connection:
    # The queue holds tasks and errors: owner only. O_EXCL, so an existing file is never
    # opened here: closing any descriptor of a database file drops every POSIX lock this
    # process holds on it, SQLite's included ("disk I/O error" on its other connections).
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _row_to_job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    """A row of `SELECT {_COLUMNS}` as a `Job` (the model turns kind and state into enums)."""
    fields = dict(zip(_COLUMN_NAMES, row, strict=True))
    fields["task"] = orjson.loads(fields["task"])
    fields["cancel_requested"] = bool(fields["cancel_requested"])
    return Job(**fields)
