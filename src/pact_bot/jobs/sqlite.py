"""The embedded queue: one SQLite file in WAL mode, durable before the webhook answers 202.

Public API: `SqliteQueue(path, lease_seconds=60, max_attempts=3, clock=SYSTEM_CLOCK)` implements
`pact_bot.jobs.model.Queue`, plus `release(job_id, worker_id)` (hand a job back on shutdown)
and `migrate()` (create the schema; `open()` does it too).

Why group commit: every write (enqueue, claim, heartbeat, finish…) goes through one
connection. Requests that arrive while a COMMIT is on its way to disk wait, then all run in
the next transaction (`synchronous=FULL`); their futures resolve only after COMMIT — one fsync
for a whole batch of concurrent webhooks. Each request runs in its own SAVEPOINT, so one
failing request does not undo the others (`_Committer` says what runs on the loop). Reads
use per-thread connections and never wait for writes. A queue belongs to the event loop that
opened it. Several processes (serve + `pact-bot worker`) may share the
file: transactions are `BEGIN IMMEDIATE` with a busy timeout.

Semantics (shared with the Postgres backend):
- `deliveries` remembers every delivery id and the sha256 of its body; a job insert records
  its delivery in the same transaction, so a redelivery (same id) or a replay (same signed
  body, new id) is `duplicate_delivery` whether or not it started a job.
- `prune(now, jobs_before, deliveries_before)` deletes finished jobs and old deliveries
  (retention, `jobs.retention`).
- A job identical to one still queued (same key and `fingerprint()`) is `coalesced`.
- `enqueue_with_ack(job, ack)`: the job, and before it (same transaction) its 👀 `ack`
  reply job only when the job's key already has a queued or running job.
- `claim` takes the oldest queued job of a key only when that key has no running job.
- A running job whose lease lapsed is queued again (claim adds the attempt); after
  `max_attempts` claims it fails with "worker lost (lease expired) after N attempts", and
  the same transaction enqueues its `lost_notice` (a reply job that says so on GitHub).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from pact_bot.clock import SYSTEM_CLOCK, Clock
from pact_bot.jobs.model import (
    TERMINAL,
    Enqueued,
    Job,
    JobKind,
    JobState,
    Pruned,
    Queue,
    ack_job,
    fingerprint,
    lost_notice,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

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
_UPDATABLE = {"cost_usd", "turns", "pr_url", "error"}


def _connect(path: Path) -> sqlite3.Connection:
    with contextlib.suppress(OSError):  # the queue holds tasks and errors: owner only
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _row_to_job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    (
        id_,
        kind,
        key,
        repo,
        number,
        installation_id,
        delivery_id,
        sender,
        task,
        state,
        attempts,
        created_at,
        started_at,
        finished_at,
        error,
        pr_url,
        cost_usd,
        turns,
        cancel_requested,
        worker_id,
    ) = row
    return Job(
        id=id_,
        kind=JobKind(kind),
        key=key,
        repo=repo,
        number=number,
        installation_id=installation_id,
        delivery_id=delivery_id,
        sender=sender,
        task=orjson.loads(task),
        state=JobState(state),
        attempts=attempts,
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        error=error,
        pr_url=pr_url,
        cost_usd=cost_usd,
        turns=turns,
        cancel_requested=bool(cancel_requested),
        worker_id=worker_id,
    )


class _Committer:
    """Group commit on the event loop: write requests collect while the loop is busy or the
    previous COMMIT is on disk, then run back to back in one transaction.

    The requests run on the loop thread (page-cache work, microseconds). BEGIN and COMMIT
    run inline too while they are fast (no other process holds the lock; fsync well under
    `INLINE_LIMIT`): a worker thread would have to win the GIL back from a busy loop for
    every hop, which costs more than the fsync. On a slow disk, or when another process
    holds the write lock, they move to a dedicated thread so the loop keeps answering.

    Several `serve` processes on one file (`PACT_WEB_PROCESSES`) take turns through an
    `flock` on `<db>.writer-lock` around each batch: the kernel wakes the waiting process as
    soon as the lock is released, where SQLite's busy handler sleeps 1, 2, 5, 10… ms and
    lets one process starve the other (p99 of 2 processes: ~200 ms without, ~15 ms with).
    """

    INLINE_LIMIT = 0.002  # seconds; moving average of COMMIT time above this → thread

    CHECKPOINT_EVERY = 0.5  # seconds between WAL checkpoints (off the loop)

    def __init__(
        self,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        checkpoint: Callable[[], Any],
        lock_path: Path | None = None,
    ) -> None:
        self._conn = conn
        self._lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600) if lock_path else None
        self._checkpoint = checkpoint
        self._checkpointing: asyncio.Future[Any] | None = None
        self._last_checkpoint = time.monotonic()
        self._executor = executor
        self.loop = asyncio.get_running_loop()
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], bool]]
        self._pending = []
        self._drain_task: asyncio.Task[None] | None = None
        self._commit_avg = 0.0

    def submit(
        self, fn: Callable[[sqlite3.Connection], T], isolated: bool = True
    ) -> asyncio.Future[T]:
        fut: asyncio.Future[T] = self.loop.create_future()
        self._pending.append((fn, fut, isolated))
        if self._drain_task is None:
            self._drain_task = self.loop.create_task(self._drain())
        return fut

    async def _off_loop(self, sql: str) -> None:
        await self.loop.run_in_executor(self._executor, self._conn.execute, sql)

    async def _lock(self) -> None:
        if self._lock_fd is None:
            return
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another serve process is writing
            await self.loop.run_in_executor(
                self._executor, fcntl.flock, self._lock_fd, fcntl.LOCK_EX
            )

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def _begin(self) -> None:
        await self._lock()
        try:
            await self._begin_transaction()
        except BaseException:
            self._unlock()
            raise

    async def _begin_transaction(self) -> None:
        conn = self._conn
        if self._commit_avg < self.INLINE_LIMIT:
            conn.execute("PRAGMA busy_timeout=0")
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError:
                pass  # another process is writing: wait for it off the loop
            finally:
                conn.execute("PRAGMA busy_timeout=30000")
        await self._off_loop("BEGIN IMMEDIATE")

    async def _commit(self) -> None:
        started = time.perf_counter()
        if self._commit_avg < self.INLINE_LIMIT:
            self._conn.execute("COMMIT")
        else:
            await self._off_loop("COMMIT")
        took = time.perf_counter() - started
        self._commit_avg = 0.8 * self._commit_avg + 0.2 * took
        now = time.monotonic()
        if self._checkpointing is None and now - self._last_checkpoint > self.CHECKPOINT_EVERY:
            self._last_checkpoint = now
            self._checkpointing = self.loop.run_in_executor(None, self._checkpoint)
            self._checkpointing.add_done_callback(self._checkpoint_done)

    def _checkpoint_done(self, fut: asyncio.Future[Any]) -> None:
        self._checkpointing = None
        if not fut.cancelled() and fut.exception() is not None:
            log.warning("WAL checkpoint failed: %s", fut.exception())

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let this loop iteration's other requests join
            while self._pending:
                try:
                    await self._begin()
                except Exception as e:
                    batch, self._pending = self._pending, []
                    for _fn, fut, _iso in batch:
                        _resolve(fut, False, e)
                    continue
                batch, self._pending = self._pending, []
                results = self._run(batch)
                try:
                    await self._commit()
                except Exception as e:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                    results = [(False, e)] * len(batch)
                finally:
                    self._unlock()
                for (_fn, fut, _iso), (ok, value) in zip(batch, results, strict=True):
                    _resolve(fut, ok, value)
                await asyncio.sleep(0)
        finally:
            self._drain_task = None

    def _run(self, batch: list[tuple[Callable[[sqlite3.Connection], Any], Any, bool]]) -> list[Any]:
        conn = self._conn
        results: list[tuple[bool, Any]] = []
        for fn, _fut, isolated in batch:
            if not isolated:
                try:
                    results.append((True, fn(conn)))
                except Exception as e:
                    results.append((False, e))
                continue
            conn.execute("SAVEPOINT op")
            try:
                results.append((True, fn(conn)))
                conn.execute("RELEASE op")
            except Exception as e:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                results.append((False, e))
        return results

    async def close(self) -> None:
        while self._drain_task is not None:
            await asyncio.shield(self._drain_task)
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the caller gave up (cancelled); the write stands
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _enqueue_op(
    job: Job, body_sha256: str | None = None
) -> Callable[[sqlite3.Connection], Enqueued]:
    """The enqueue transaction's body, also run inside a claim (a lost job's notice)."""
    fp = fingerprint(job)
    task = orjson.dumps(job.task, default=str).decode()

    row = (
        job.id,
        str(job.kind),
        job.key,
        job.repo,
        job.number,
        job.installation_id,
        job.delivery_id,
        job.sender,
        task,
        fp,
        job.created_at,
        job.key,
        fp,
    )

    def op(c: sqlite3.Connection) -> Enqueued:
        # Two statements on the common path; self-contained (no savepoint): the only
        # write before a possible failure is undone by hand.
        cur = c.execute(  # ignored when the id or the body hash is there already
            "INSERT OR IGNORE INTO deliveries(delivery_id, received_at, job_id, body_sha256) "
            "VALUES (?,?,?,?)",
            (job.delivery_id, time.time(), job.id, body_sha256),
        )
        if cur.rowcount != 1:
            return Enqueued.duplicate_delivery
        try:
            cur = c.execute(
                "INSERT INTO jobs(id, kind, key, repo, number, installation_id, delivery_id, "
                "sender, task, fingerprint, state, attempts, created_at) "
                "SELECT ?,?,?,?,?,?,?,?,?,?,'queued',0,? WHERE NOT EXISTS (SELECT 1 FROM jobs "
                "WHERE key = ? AND state = 'queued' AND fingerprint = ?)",
                row,
            )
            if cur.rowcount == 1:
                return Enqueued.created
            c.execute(
                "UPDATE deliveries SET job_id = (SELECT id FROM jobs WHERE key = ? AND "
                "state = 'queued' AND fingerprint = ? LIMIT 1) WHERE delivery_id = ?",
                (job.key, fp, job.delivery_id),
            )
            return Enqueued.coalesced
        except BaseException:
            c.execute("DELETE FROM deliveries WHERE delivery_id = ?", (job.delivery_id,))
            raise

    return op


def _enqueue_with_ack_op(
    job: Job, ack: Job | Callable[[], Job], body_sha256: str | None = None
) -> Callable[[sqlite3.Connection], Enqueued]:
    """`job`, and before it `ack` only when `job.key` already has a queued or running job
    (otherwise a free worker claims `job` at once and reacts itself). One indexed lookup on
    the common path; a redelivery records neither."""
    job_op = _enqueue_op(job, body_sha256)

    def op(c: sqlite3.Connection) -> Enqueued:
        busy = c.execute(
            "SELECT 1 FROM jobs WHERE key = ? AND state IN ('queued','running') LIMIT 1",
            (job.key,),
        ).fetchone()
        if busy is None:
            return job_op(c)
        if c.execute(
            "SELECT 1 FROM deliveries WHERE delivery_id = ? OR body_sha256 = ?",
            (job.delivery_id, body_sha256),
        ).fetchone():
            return Enqueued.duplicate_delivery
        c.execute("SAVEPOINT enqueue_ack")
        try:
            try:
                # the ack first, so a free worker reacts while the job waits
                _enqueue_op(ack_job(ack))(c)
            except Exception:
                log.exception("could not record the acknowledgement of job %s", job.id)
            result = job_op(c)
        except BaseException:
            c.execute("ROLLBACK TO enqueue_ack")
            c.execute("RELEASE enqueue_ack")
            raise
        c.execute("RELEASE enqueue_ack")
        return result

    return op


class SqliteQueue(Queue):
    """The `Queue` protocol on one SQLite file (see the module docstring).

    `clock` stamps and judges leases (`now()`); processes sharing the file share the wall
    clock.
    """

    def __init__(
        self,
        path: str | Path,
        lease_seconds: float = 60.0,
        max_attempts: int = 3,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = Path(path)
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.clock = clock
        self._writer: _Committer | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._work = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-commit:{self.path.name}")
        loop = asyncio.get_running_loop()

        def connect() -> sqlite3.Connection:
            conn = _connect(self.path)
            _create_schema(conn)
            # checkpoints run in a thread (`_Committer`), not inside an inline COMMIT
            conn.execute("PRAGMA wal_autocheckpoint=0")
            return conn

        try:
            self._conn = await loop.run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor
        lock = self.path.with_name(self.path.name + ".writer-lock")
        self._writer = _Committer(self._conn, executor, self._checkpoint, lock)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.close()
        conn, self._conn = self._conn, None
        executor, self._executor = self._executor, None
        if conn is not None and executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        if executor is not None:
            executor.shutdown(wait=False)
        with self._readers_lock:
            for conn in self._readers:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._readers.clear()
        self._local = threading.local()

    def migrate(self) -> None:
        """Create the schema (idempotent); usable without an event loop."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        try:
            _create_schema(conn)
        finally:
            conn.close()

    async def __aenter__(self) -> SqliteQueue:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _write(self, fn: Callable[[sqlite3.Connection], T], isolated: bool = True) -> Awaitable[T]:
        """`isolated=False` for requests that leave nothing behind when they raise."""
        if self._writer is None:
            raise RuntimeError("SqliteQueue is not open")
        if asyncio.get_running_loop() is not self._writer.loop:
            return asyncio.to_thread(self._write_alone, fn)
        return self._writer.submit(fn, isolated)

    def _checkpoint(self) -> None:
        self._reader().execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _write_alone(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A write from another event loop (a TestClient thread, say): its own transaction on
        this thread's connection; SQLite's lock orders it with the batches."""
        conn = self._reader()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(lambda: fn(self._reader()))

    # -- deliveries and enqueue --------------------------------------------------------------

    async def record_delivery(self, delivery_id: str, body_sha256: str | None = None) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT OR IGNORE INTO deliveries(delivery_id, received_at, body_sha256) "
                "VALUES (?, ?, ?)",
                (delivery_id, time.time(), body_sha256),
            )
            return cur.rowcount == 1

        return await self._write(op, isolated=False)

    async def enqueue(self, job: Job, body_sha256: str | None = None) -> Enqueued:
        result = await self._write(_enqueue_op(job, body_sha256), isolated=False)
        if result is Enqueued.created:
            self._work.set()
        return result

    async def enqueue_with_ack(
        self, job: Job, ack: Job | Callable[[], Job], body_sha256: str | None = None
    ) -> Enqueued:
        """`enqueue(job)`, recording `ack` first (in the same transaction) only when
        `job.key` already has a queued or running job: the job would wait, so a worker
        should react 👀 now. The result is the job's."""
        result = await self._write(_enqueue_with_ack_op(job, ack, body_sha256), isolated=False)
        if result is Enqueued.created:
            self._work.set()
        return result

    # -- retention ---------------------------------------------------------------------------

    async def prune(self, now: float, jobs_before: float, deliveries_before: float) -> Pruned:
        """Finished jobs and old deliveries go; queued and running jobs never do."""

        def op(c: sqlite3.Connection) -> Pruned:
            jobs = c.execute(
                "DELETE FROM jobs WHERE state IN ('succeeded','failed','cancelled') "
                "AND COALESCE(finished_at, created_at) < ?",
                (jobs_before,),
            ).rowcount
            deliveries = c.execute(
                "DELETE FROM deliveries WHERE received_at < ?", (deliveries_before,)
            ).rowcount
            return Pruned(jobs, deliveries)

        return await self._write(op)

    async def wait_for_work(self, timeout: float) -> None:
        """Return when this process enqueued or finished a job, or after `timeout`.

        Workers in the serve process start a job as soon as its 202 is sent instead of at
        their next poll; workers in other processes still poll.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    # -- workers -----------------------------------------------------------------------------

    def _expire_leases(self, c: sqlite3.Connection, now: float) -> None:
        lapsed = c.execute(
            "SELECT id, attempts, cancel_requested FROM jobs "
            "WHERE state = 'running' AND lease_until < ?",
            (now,),
        ).fetchall()
        for job_id, attempts, cancel_requested in lapsed:
            if cancel_requested:
                c.execute(
                    "UPDATE jobs SET state='cancelled', finished_at=?, worker_id=NULL, "
                    "lease_until=NULL, error='cancelled (worker lost)' WHERE id=?",
                    (now, job_id),
                )
            elif attempts >= self.max_attempts:
                c.execute(
                    "UPDATE jobs SET state='failed', finished_at=?, worker_id=NULL, "
                    "lease_until=NULL, error=? WHERE id=?",
                    (now, f"worker lost (lease expired) after {attempts} attempts", job_id),
                )
                self._notify_lost(c, job_id)
            else:
                c.execute(
                    "UPDATE jobs SET state='queued', worker_id=NULL, lease_until=NULL WHERE id=?",
                    (job_id,),
                )

    @staticmethod
    def _notify_lost(c: sqlite3.Connection, job_id: str) -> None:
        """In the failing transaction: the reply job that says so on GitHub."""
        row = c.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()  # noqa: S608
        notice = lost_notice(_row_to_job(row)) if row else None
        if notice is not None:
            _enqueue_op(notice)(c)

    async def claim(self, worker_id: str) -> Job | None:
        def op(c: sqlite3.Connection) -> Job | None:
            now = self.clock.now()
            self._expire_leases(c, now)
            row = c.execute(
                "SELECT j.seq FROM jobs j WHERE j.state = 'queued' "
                "AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.key = j.key AND r.state = 'running') "
                "AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.key = j.key "
                "  AND o.state = 'queued' AND o.seq < j.seq) "
                "ORDER BY j.seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE jobs SET state='running', attempts=attempts+1, started_at=?, "
                "worker_id=?, lease_until=? WHERE seq=?",
                (now, worker_id, now + self.lease_seconds, row[0]),
            )
            got = c.execute(f"SELECT {_COLUMNS} FROM jobs WHERE seq=?", (row[0],))  # noqa: S608
            got = got.fetchone()
            return _row_to_job(got)

        return await self._write(op)

    async def heartbeat(self, job_id: str, worker_id: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE jobs SET lease_until=? WHERE id=? AND worker_id=? AND state='running'",
                (self.clock.now() + self.lease_seconds, job_id, worker_id),
            )
            return cur.rowcount == 1

        return await self._write(op)

    async def update(self, job_id: str, **fields: Any) -> None:
        """Known columns are set; any other field is merged into `task["progress"]`."""
        cols = {k: v for k, v in fields.items() if k in _UPDATABLE}
        extra = {k: v for k, v in fields.items() if k not in _UPDATABLE}

        def op(c: sqlite3.Connection) -> None:
            if cols:
                sets = ", ".join(f"{k}=?" for k in cols)
                sql = f"UPDATE jobs SET {sets} WHERE id=?"  # noqa: S608 - column names from _UPDATABLE
                c.execute(sql, (*cols.values(), job_id))
            if extra:
                row = c.execute("SELECT task FROM jobs WHERE id=?", (job_id,)).fetchone()
                if row is not None:
                    task = json.loads(row[0])
                    task.setdefault("progress", {}).update(extra)
                    c.execute(
                        "UPDATE jobs SET task=? WHERE id=?",
                        (json.dumps(task, default=str), job_id),
                    )

        await self._write(op)

    async def finish(
        self, job_id: str, worker_id: str, state: JobState, error: str | None = None
    ) -> None:
        if JobState(state) not in TERMINAL:
            raise ValueError(f"finish needs a terminal state, not {state}")

        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE jobs SET state=?, error=COALESCE(?, error), finished_at=?, "
                "lease_until=NULL WHERE id=? AND worker_id=? AND state='running'",
                (str(state), error, self.clock.now(), job_id, worker_id),
            )

        await self._write(op)
        self._work.set()  # the next job of this key may start now

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Hand a running job back unstarted (shutdown): queued again, this attempt undone."""

        def op(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE jobs SET state='queued', attempts=MAX(attempts-1, 0), worker_id=NULL, "
                "lease_until=NULL, started_at=NULL WHERE id=? AND worker_id=? AND state='running'",
                (job_id, worker_id),
            )
            return cur.rowcount == 1

        return await self._write(op)

    # -- cancellation ------------------------------------------------------------------------

    async def request_cancel(self, key: str) -> list[str]:
        def op(c: sqlite3.Connection) -> list[str]:
            now = self.clock.now()
            rows = c.execute(
                "SELECT id, state FROM jobs WHERE key=? AND state IN ('queued','running') "
                "ORDER BY seq",
                (key,),
            ).fetchall()
            for job_id, state in rows:
                if state == "queued":
                    c.execute(
                        "UPDATE jobs SET state='cancelled', finished_at=?, "
                        "error='cancelled before it started' WHERE id=?",
                        (now, job_id),
                    )
                else:
                    c.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
            return [r[0] for r in rows]

        return await self._write(op)

    async def is_cancelled(self, job_id: str) -> bool:
        def op(c: sqlite3.Connection) -> bool:
            row = c.execute(
                "SELECT state, cancel_requested FROM jobs WHERE id=?", (job_id,)
            ).fetchone()
            return row is not None and (row[0] == "cancelled" or bool(row[1]))

        return await self._read(op)

    # -- reads -------------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        def op(c: sqlite3.Connection) -> Job | None:
            row = c.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,))  # noqa: S608
            row = row.fetchone()
            return _row_to_job(row) if row else None

        return await self._read(op)

    async def list(
        self, state: JobState | None = None, key: str | None = None, limit: int = 100
    ) -> list[Job]:
        def op(c: sqlite3.Connection) -> list[Job]:
            where, args = [], []
            if state is not None:
                where.append("state=?")
                args.append(str(state))
            if key is not None:
                where.append("key=?")
                args.append(key)
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM jobs {clause} ORDER BY seq DESC LIMIT ?",  # noqa: S608
                (*args, limit),
            ).fetchall()
            return [_row_to_job(r) for r in rows]

        return await self._read(op)

    async def depth(self) -> dict[str, int]:
        def op(c: sqlite3.Connection) -> dict[str, int]:
            out = {s.value: 0 for s in JobState}
            for state, n in c.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
                out[state] = n
            return out

        return await self._read(op)

    async def get_repo_config(self, repo: str) -> dict[str, Any] | None:
        def op(c: sqlite3.Connection) -> dict[str, Any] | None:
            row = c.execute("SELECT config FROM repo_config WHERE repo=?", (repo,)).fetchone()
            return json.loads(row[0]) if row else None

        return await self._read(op)

    async def set_repo_config(self, repo: str, config: dict[str, Any]) -> None:
        def op(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO repo_config(repo, config, updated_at) VALUES (?,?,?) "
                "ON CONFLICT(repo) DO UPDATE SET config=excluded.config, "
                "updated_at=excluded.updated_at",
                (repo, json.dumps(config), time.time()),
            )

        await self._write(op)
