"""The writer thread: one connection, group commits, results handed back to asyncio.

Every job waiting when a transaction starts joins it. Row jobs (the steps of many calls)
are merged and written with one multi-row statement per table; the rarer closure jobs
run one by one, each in a savepoint. Each caller is answered only after the COMMIT has
made its job durable, in one wake-up per event loop. Under load that turns hundreds of
small transactions into a few fsyncs without acknowledging anything not on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from collector.adapters.store.migrations import migrate

log = structlog.get_logger("collector.store")

# heads of multi-row statements: _write_many appends "(?,..),(?,..)" and the tail
_INSERT_COMMAND = (
    "INSERT OR IGNORE INTO commands (session_id, call_control_id, seq, action, body,"
    " command_id, decided_at, updated_at) VALUES "
)
_INSERT_SUBMISSION = (
    "INSERT OR IGNORE INTO submissions (id, session_id, form, status, body, created_at) VALUES "
)
_INSERT_DELIVERY = (
    "INSERT OR IGNORE INTO deliveries (submission_id, sink, key, next_at, created_at,"
    " updated_at) VALUES "
)
_FINISH_COMMANDS = (
    "UPDATE commands SET state = v.column1, updated_at = v.column2, attempts = v.column3,"
    " last_error = v.column4 FROM (VALUES "
)
_FINISH_COMMANDS_TAIL = ") AS v WHERE commands.session_id = v.column5 AND commands.seq = v.column6"
_UPSERT_SESSION = (
    "INSERT INTO sessions (id, call_control_id, form, state, started_at, updated_at, terminal,"
    " deadline, deadline_kind, body) VALUES "
)
_UPSERT_SESSION_TAIL = """
ON CONFLICT(id) DO UPDATE SET call_control_id=excluded.call_control_id,
    state=excluded.state, updated_at=excluded.updated_at,
    terminal=excluded.terminal, deadline=excluded.deadline,
    deadline_kind=excluded.deadline_kind, body=excluded.body
"""


_MAX_BATCH = 256
_STOP = object()


@dataclass(slots=True)
class Rows:
    """A step's writes as plain rows, so a whole group goes in one executemany per table."""

    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    commands: list[tuple[Any, ...]] = field(default_factory=list)
    submissions: list[tuple[Any, ...]] = field(default_factory=list)
    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    finished: list[tuple[Any, ...]] = field(default_factory=list)  # commands sent or given up

    def extend(self, other: Rows) -> None:
        self.sessions += other.sessions
        self.commands += other.commands
        self.submissions += other.submissions
        self.deliveries += other.deliveries
        self.finished += other.finished

    def write(self, conn: sqlite3.Connection) -> None:
        # one multi-row statement per table (per _CHUNK rows), not one step per row: the
        # writer takes the GIL back after every step, and under load each take is a wait
        _write_many(conn, _UPSERT_SESSION, 10, self.sessions, _UPSERT_SESSION_TAIL)
        _write_many(conn, _INSERT_COMMAND, 8, self.commands)
        _write_many(conn, _INSERT_SUBMISSION, 6, self.submissions)
        _write_many(conn, _INSERT_DELIVERY, 6, self.deliveries)
        if self.finished:
            # one update per command; a later one in the group wins, as it would in order
            latest = {(row[4], row[5]): row for row in self.finished}
            _write_many(conn, _FINISH_COMMANDS, 6, list(latest.values()), _FINISH_COMMANDS_TAIL)


_CHUNK = 200


@functools.lru_cache(maxsize=256)
def _many_sql(head: str, width: int, count: int, tail: str) -> str:
    row = "(" + ",".join("?" * width) + ")"
    return head + ",".join([row] * count) + tail


def _write_many(
    conn: sqlite3.Connection, head: str, width: int, rows: list[tuple[Any, ...]], tail: str = ""
) -> None:
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        args = [value for row in chunk for value in row]
        conn.execute(_many_sql(head, width, len(chunk), tail), args)


class Writer(threading.Thread):
    """Owns the connection; commits whatever is waiting as one transaction.

    The thread re-takes the GIL after every statement, and each time it may wait for the
    event loop's thread to let go, so a group costs a handful of statements, not a handful
    per job: row jobs are merged into one executemany per table; only the rarer closure
    jobs run one by one, each in a savepoint. Results go back in one wake-up per group.
    """

    def __init__(
        self, path: str, synchronous: str, on_commit: Callable[[float, int], None] | None = None
    ) -> None:
        super().__init__(name="collector-sqlite", daemon=True)
        self.path = path
        self.synchronous = synchronous
        self.on_commit = on_commit  # (seconds the COMMIT took, jobs it made durable)
        # SimpleQueue: a put from the event loop takes no Python-level lock the writer holds;
        # each item is a list of jobs that arrive together (one event-loop turn's)
        self.jobs: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def submit_many(self, jobs: list[Any]) -> None:
        """Queue jobs that must reach the writer together (one wake-up, one group)."""
        self.jobs.put(jobs)

    def stop(self) -> None:
        self.jobs.put([_STOP])

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=ON")
            # statement journals (a savepoint's undo pages) in memory, not in temp files
            conn.execute("PRAGMA temp_store=MEMORY")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def run(self) -> None:
        conn: sqlite3.Connection | None
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to open()
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            stopping = False
            while not stopping:
                batch = self.jobs.get()
                while len(batch) < _MAX_BATCH:
                    try:
                        batch += self.jobs.get_nowait()
                    except queue.Empty:
                        break
                if _STOP in batch:
                    stopping = True
                    batch = [job for job in batch if job is not _STOP]
                if not batch:
                    continue
                # nothing that goes wrong here ends the thread: the group's jobs get the
                # error, and a connection left unusable is replaced before the next group
                commit_seconds = None
                try:
                    if conn is None:
                        conn = self._connect()
                    results, commit_seconds = self._run_batch(conn, batch)
                except BaseException as exc:
                    results = [(resolve, None, exc) for _, resolve in batch]
                if commit_seconds is None and conn is not None:
                    conn = self._recover(conn, results)
                _settle(results)
                if commit_seconds is not None:
                    self._report(commit_seconds, sum(1 for r in results if r[2] is None))
                del batch, results  # hold no failed job's frames (and statements) while idle
        finally:
            if conn is not None:
                conn.close()

    def _recover(
        self, conn: sqlite3.Connection, results: list[tuple[Any, Any, Any]]
    ) -> sqlite3.Connection | None:
        """After a failed group: undo what is left of it, or, if even that fails (ROLLBACK
        raised, the connection was closed), let the connection go and open another."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return conn
        except Exception:
            log.exception("store_rollback_failed", path=self.path)
        if self.path == ":memory:":
            return conn  # another connection would be another, empty database
        # a statement a failed job left in progress would keep the old connection (and
        # its write lock) alive after close(): clear the frames that hold it
        for _, _, error in results:
            _clear_frames(error)
        with contextlib.suppress(Exception):
            conn.close()  # whatever it had not committed is undone with it
        try:
            return self._connect()
        except Exception:
            log.exception("store_reopen_failed", path=self.path)
            return None  # tried again before the next group

    def _report(self, seconds: float, jobs: int) -> None:
        if self.on_commit is None:
            return
        try:
            self.on_commit(seconds, jobs)
        except Exception:  # a metric must never stop the writer
            log.exception("commit_report_failed")

    @staticmethod
    def _run_batch(
        conn: sqlite3.Connection, batch: list[Any]
    ) -> tuple[list[tuple[Any, Any, Any]], float | None]:
        """Each job's (resolve, value, error), and how long the COMMIT took (None: none)."""
        rows = [job for job in batch if isinstance(job[0], Rows)]
        calls = [job for job in batch if not isinstance(job[0], Rows)]
        results: list[tuple[Any, Any, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            if rows:
                merged = Rows()
                for job, _ in rows:
                    merged.extend(job)
                # the rows go first, so the transaction itself is their savepoint: no
                # savepoint means SQLite keeps no statement journal of the pages they change
                try:
                    merged.write(conn)
                    results += [(resolve, None, None) for _, resolve in rows]
                except Exception:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    conn.execute("BEGIN IMMEDIATE")
                    calls = [(job.write, resolve) for job, resolve in rows] + calls
            for fn, resolve in calls:
                conn.execute("SAVEPOINT job")
                try:
                    value = fn(conn)
                except Exception as exc:
                    if not conn.in_transaction:  # SQLite undid it all (SQLITE_FULL): all fail
                        raise
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((resolve, None, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((resolve, value, None))
            started = time.perf_counter()
            conn.execute("COMMIT")  # the WAL write and its fsync
            return results, time.perf_counter() - started
        except Exception as exc:  # run() rolls back (see _recover)
            return [(resolve, None, exc) for _, resolve in batch], None


def _clear_frames(error: BaseException | None) -> None:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


def _settle(results: list[tuple[Any, Any, Any]]) -> None:
    """Hand each result to its waiting future, one wake-up per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, Any]]] = {}
    for (loop, fut), value, error in results:
        by_loop.setdefault(loop, []).append((fut, value, error))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle_in_loop, items)


def _settle_in_loop(items: list[tuple[asyncio.Future[Any], Any, Any]]) -> None:
    for fut, value, error in items:
        if fut.done():
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)
