"""The SQLite store: sessions, seen events, the command outbox, submissions and deliveries.

One writer thread owns the connection and commits in groups: every job waiting when a
transaction starts joins it, each inside its own savepoint, and each caller is answered
only after the COMMIT (WAL, synchronous=FULL) has made its job durable. Under load that
turns hundreds of small transactions into a few fsyncs without acknowledging anything
that is not on disk. aiosqlite would give us the thread but not the grouping.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from collector.session.commands import Command
from collector.session.model import Session
from collector.store.migrations import migrate
from collector.store.rows import CommandRow, DeliveryRow

T = TypeVar("T")
_MAX_BATCH = 256
_STOP = object()


@dataclass(slots=True)
class _Rows:
    """A step's writes as plain rows, so a whole group goes in one executemany per table."""

    seen: list[tuple[Any, ...]] = field(default_factory=list)
    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    commands: list[tuple[Any, ...]] = field(default_factory=list)
    submissions: list[tuple[Any, ...]] = field(default_factory=list)
    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    finished: list[tuple[Any, ...]] = field(default_factory=list)  # commands sent or given up

    def extend(self, other: _Rows) -> None:
        self.seen += other.seen
        self.sessions += other.sessions
        self.commands += other.commands
        self.submissions += other.submissions
        self.deliveries += other.deliveries
        self.finished += other.finished

    def write(self, conn: sqlite3.Connection) -> None:
        # one multi-row statement per table (per _CHUNK rows), not one step per row: the
        # writer takes the GIL back after every step, and under load each take is a wait
        _write_many(conn, _INSERT_SEEN, 3, self.seen)
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


class _Writer(threading.Thread):
    """Owns the connection; commits whatever is waiting as one transaction.

    The thread re-takes the GIL after every statement, and each time it may wait for the
    event loop's thread to let go, so a group costs a handful of statements, not a handful
    per job: row jobs are merged into one executemany per table; only the rarer closure
    jobs run one by one, each in a savepoint. Results go back in one wake-up per group.
    """

    def __init__(self, path: str, synchronous: str) -> None:
        super().__init__(name="collector-sqlite", daemon=True)
        self.path = path
        self.synchronous = synchronous
        # SimpleQueue: a put from the event loop takes no Python-level lock the writer holds
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def submit(self, job: Any) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.put(_STOP)

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=ON")
            # statement journals (a savepoint's undo pages) in memory, not in temp files
            conn.execute("PRAGMA temp_store=MEMORY")
            migrate(conn)
        except BaseException as exc:  # reported to open()
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            stopping = False
            while not stopping:
                batch = [self.jobs.get()]
                while len(batch) < _MAX_BATCH:
                    try:
                        batch.append(self.jobs.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in batch:
                    stopping = True
                    batch = [job for job in batch if job is not _STOP]
                if batch:
                    _settle(self._run_batch(conn, batch))
        finally:
            conn.close()

    @staticmethod
    def _run_batch(conn: sqlite3.Connection, batch: list[Any]) -> list[tuple[Any, Any, Any]]:
        rows = [job for job in batch if isinstance(job[0], _Rows)]
        calls = [job for job in batch if not isinstance(job[0], _Rows)]
        results: list[tuple[Any, Any, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            if rows:
                merged = _Rows()
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
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((resolve, None, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((resolve, value, None))
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(resolve, None, exc) for _, resolve in batch]
        return results


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


def _session_row(s: Session) -> tuple[Any, ...]:
    return (
        s.id,
        s.call.call_control_id,
        s.form,
        s.state.value,
        s.started_at,
        s.updated_at,
        1 if s.terminal else 0,
        s.deadline,
        s.deadline_kind,
        s.model_dump_json(by_alias=True),
    )


# heads of multi-row statements: _write_many appends "(?,..),(?,..)" and the tail
_INSERT_SEEN = "INSERT OR IGNORE INTO seen_events (id, call_control_id, received_at) VALUES "
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
ON CONFLICT(id) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at,
    terminal=excluded.terminal, deadline=excluded.deadline,
    deadline_kind=excluded.deadline_kind, body=excluded.body
"""


class SqliteStore:
    """Durable state of every call, in one SQLite file."""

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = str(path)
        self.synchronous = synchronous
        self._writer: _Writer | None = None

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = _Writer(self.path, self.synchronous)
        self._writer.start()
        await asyncio.to_thread(self._writer.ready.wait)
        if self._writer.error is not None:
            raise self._writer.error

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            await asyncio.to_thread(self._writer.join, 10)
            self._writer = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) in the writer thread, inside a transaction, once it is durable."""
        return await self._submit(fn)  # type: ignore[no-any-return]

    async def _submit(self, job: Any) -> Any:
        if self._writer is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._writer.submit((job, (loop, fut)))
        return await fut

    # -- sessions and events --------------------------------------------------------

    async def commit_step(
        self,
        session: Session,
        event_id: str | None,
        commands: Iterable[Command] = (),
        submission: dict[str, Any] | None = None,
        sinks: Iterable[str] = (),
    ) -> None:
        """Save one decision atomically: the event id, the session, its outbox rows."""
        rows = _Rows(sessions=[_session_row(session)])
        ccid = session.call.call_control_id
        if event_id is not None:
            rows.seen.append((event_id, ccid, session.updated_at))
        rows.commands = [
            (
                session.id,
                ccid,
                c.seq,
                c.action,
                orjson.dumps(c.body).decode(),
                c.command_id(session.id),
                c.decided_at,
                c.decided_at,
            )
            for c in commands
        ]
        if submission is not None:
            sid = submission["submission_id"]
            at = session.updated_at
            rows.submissions.append(
                (
                    sid,
                    session.id,
                    submission["form"],
                    submission["status"],
                    orjson.dumps(submission).decode(),
                    at,
                )
            )
            rows.deliveries = [(sid, name, sid, at, at, at) for name in sinks]
        await self._submit(rows)

    async def record_seen(self, event_id: str, call_control_id: str, at: float) -> bool:
        """Record an event that reached no session; False if it was seen before."""

        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO seen_events (id, call_control_id, received_at)"
                " VALUES (?, ?, ?)",
                (event_id, call_control_id, at),
            )
            return cur.rowcount == 1

        return await self.run(work)

    async def session_by_call(self, call_control_id: str) -> Session | None:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT body FROM sessions WHERE call_control_id = ?", (call_control_id,)
            ).fetchone()
            return row[0] if row else None

        body = await self.run(work)
        return Session.model_validate_json(body) if body else None

    async def session(self, session_id: str) -> Session | None:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT body FROM sessions WHERE id = ?", (session_id,)).fetchone()
            return row[0] if row else None

        body = await self.run(work)
        return Session.model_validate_json(body) if body else None

    async def sessions_with_deadlines(self) -> list[Session]:
        """Every session a timer must still wake (restored at start-up)."""

        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT body FROM sessions WHERE deadline IS NOT NULL")
            return [r[0] for r in rows]

        return [Session.model_validate_json(b) for b in await self.run(work)]

    async def list_sessions(
        self,
        *,
        state: str | None = None,
        form: str | None = None,
        since: float | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[Session]:
        """Newest first; `before` is the (started_at, id) cursor of the last page."""
        where, args = [], []
        if state:
            where.append("state = ?")
            args.append(state)
        if form:
            where.append("form = ?")
            args.append(form)
        if since is not None:
            where.append("started_at >= ?")
            args.append(since)
        if before is not None:
            where.append("(started_at < ? OR (started_at = ? AND id < ?))")
            args.extend([before[0], before[0], before[1]])
        sql = "SELECT body FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
        args.append(limit)

        def work(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute(sql, args)]

        return [Session.model_validate_json(b) for b in await self.run(work)]

    async def count_sessions_by_state(self) -> dict[str, int]:
        def work(conn: sqlite3.Connection) -> dict[str, int]:
            return dict(conn.execute("SELECT state, COUNT(*) FROM sessions GROUP BY state"))

        return await self.run(work)

    # -- command outbox -------------------------------------------------------------

    async def pending_commands(self, call_control_id: str | None = None) -> list[CommandRow]:
        sql = "SELECT * FROM commands WHERE state = 'pending'"
        args: tuple[Any, ...] = ()
        if call_control_id is not None:
            sql += " AND call_control_id = ?"
            args = (call_control_id,)
        sql += " ORDER BY call_control_id, seq"

        def work(conn: sqlite3.Connection) -> list[CommandRow]:
            conn.row_factory = sqlite3.Row
            try:
                return [CommandRow.from_row(r) for r in conn.execute(sql, args)]
            finally:
                conn.row_factory = None

        return await self.run(work)

    async def finish_command(
        self,
        session_id: str,
        seq: int,
        state: str,
        at: float,
        attempts: int,
        error: str | None = None,
    ) -> None:
        # a row job: the group's command updates go in one executemany with its other rows
        await self._submit(_Rows(finished=[(state, at, attempts, error, session_id, seq)]))

    async def commands_for(self, session_id: str) -> list[CommandRow]:
        def work(conn: sqlite3.Connection) -> list[CommandRow]:
            conn.row_factory = sqlite3.Row
            try:
                rows = conn.execute(
                    "SELECT * FROM commands WHERE session_id = ? ORDER BY seq", (session_id,)
                )
                return [CommandRow.from_row(r) for r in rows]
            finally:
                conn.row_factory = None

        return await self.run(work)

    # -- submissions and deliveries ---------------------------------------------------

    async def submission(self, submission_id: str) -> dict[str, Any] | None:
        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT body FROM submissions WHERE id = ?", (submission_id,)
            ).fetchone()
            return row[0] if row else None

        body = await self.run(work)
        return orjson.loads(body) if body else None

    async def due_deliveries(self, now: float, limit: int = 100) -> list[DeliveryRow]:
        def work(conn: sqlite3.Connection) -> list[DeliveryRow]:
            conn.row_factory = sqlite3.Row
            try:
                rows = conn.execute(
                    "SELECT d.*, s.body AS submission FROM deliveries d"
                    " JOIN submissions s ON s.id = d.submission_id"
                    " WHERE d.state = 'pending' AND d.next_at <= ?"
                    " ORDER BY d.next_at, d.id LIMIT ?",
                    (now, limit),
                )
                return [DeliveryRow.from_row(r) for r in rows]
            finally:
                conn.row_factory = None

        return await self.run(work)

    async def poll_deliveries(
        self, now: float, limit: int = 100
    ) -> tuple[list[DeliveryRow], float | None]:
        """The due deliveries, and when the next one not yet due will be, in one job."""

        def work(conn: sqlite3.Connection) -> tuple[list[DeliveryRow], float | None]:
            conn.row_factory = sqlite3.Row
            try:
                rows = conn.execute(
                    "SELECT d.*, s.body AS submission FROM deliveries d"
                    " JOIN submissions s ON s.id = d.submission_id"
                    " WHERE d.state = 'pending' AND d.next_at <= ?"
                    " ORDER BY d.next_at, d.id LIMIT ?",
                    (now, limit),
                )
                due = [DeliveryRow.from_row(r) for r in rows]
            finally:
                conn.row_factory = None
            nxt = conn.execute(
                "SELECT MIN(next_at) FROM deliveries WHERE state = 'pending' AND next_at > ?",
                (now,),
            ).fetchone()[0]
            return due, nxt

        return await self.run(work)

    async def next_delivery_at(self) -> float | None:
        def work(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT MIN(next_at) FROM deliveries WHERE state = 'pending'"
            ).fetchone()
            return row[0] if row else None

        return await self.run(work)

    async def update_delivery(
        self,
        row_id: int,
        *,
        state: str,
        attempts: int,
        at: float,
        next_at: float | None = None,
        error: str | None = None,
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, updated_at = ?,"
                " next_at = COALESCE(?, next_at), last_error = ?,"
                " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
                " WHERE id = ?",
                (state, attempts, at, next_at, error, state, at, row_id),
            )

        await self.run(work)

    async def deliveries_for(self, submission_id: str) -> list[DeliveryRow]:
        def work(conn: sqlite3.Connection) -> list[DeliveryRow]:
            conn.row_factory = sqlite3.Row
            try:
                rows = conn.execute(
                    "SELECT d.*, NULL AS submission FROM deliveries d"
                    " WHERE submission_id = ? ORDER BY id",
                    (submission_id,),
                )
                return [DeliveryRow.from_row(r) for r in rows]
            finally:
                conn.row_factory = None

        return await self.run(work)

    async def delivery_stats(self) -> tuple[dict[tuple[str, str], int], float | None]:
        """Deliveries by (sink, state), and the creation time of the oldest pending one."""

        def work(conn: sqlite3.Connection) -> tuple[dict[tuple[str, str], int], float | None]:
            counts = {
                (sink, state): n
                for sink, state, n in conn.execute(
                    "SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state"
                )
            }
            oldest = conn.execute(
                "SELECT MIN(created_at) FROM deliveries WHERE state = 'pending'"
            ).fetchone()[0]
            return counts, oldest

        return await self.run(work)

    async def list_deliveries(
        self, states: tuple[str, ...] = ("pending", "dead")
    ) -> list[DeliveryRow]:
        marks = ",".join("?" for _ in states)

        def work(conn: sqlite3.Connection) -> list[DeliveryRow]:
            conn.row_factory = sqlite3.Row
            try:
                rows = conn.execute(
                    f"SELECT d.*, NULL AS submission FROM deliveries d WHERE state IN ({marks})"
                    " ORDER BY d.created_at, d.id",
                    states,
                )
                return [DeliveryRow.from_row(r) for r in rows]
            finally:
                conn.row_factory = None

        return await self.run(work)

    async def requeue(self, now: float, delivery_id: int | None = None) -> int:
        """Make a dead delivery (or, without an id, every dead one) pending again, due now."""

        def work(conn: sqlite3.Connection) -> int:
            sql = (
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?, updated_at = ?"
            )
            args: list[Any] = [now, now]
            if delivery_id is None:
                sql += " WHERE state = 'dead'"
            else:
                sql += " WHERE id = ? AND state != 'delivered'"
                args.append(delivery_id)
            return conn.execute(sql, args).rowcount

        return await self.run(work)

    async def replay(self, submission_id: str, sink: str, key: str, now: float) -> int | None:
        """A new delivery of a submission to a sink, on purpose, under a new key."""

        def work(conn: sqlite3.Connection) -> int | None:
            if not conn.execute(
                "SELECT 1 FROM submissions WHERE id = ?", (submission_id,)
            ).fetchone():
                return None
            cur = conn.execute(
                "INSERT INTO deliveries (submission_id, sink, key, replay, next_at, created_at,"
                " updated_at) VALUES (?, ?, ?, 1, ?, ?, ?)",
                (submission_id, sink, key, now, now, now),
            )
            return cur.lastrowid

        return await self.run(work)

    # -- housekeeping ---------------------------------------------------------------

    async def prune(self, now: float, retention_days: float, seen_days: float = 1.0) -> int:
        """Forget seen event ids after a day and finished sessions after retention_days."""
        horizon = now - retention_days * 86400

        def work(conn: sqlite3.Connection) -> int:
            conn.execute(
                "DELETE FROM seen_events WHERE received_at < ?", (now - seen_days * 86400,)
            )
            old = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM sessions WHERE terminal = 1 AND updated_at < ?"
                    " AND deadline IS NULL",
                    (horizon,),
                )
            ]
            removed = 0
            for sid in old:
                pending = conn.execute(
                    "SELECT 1 FROM deliveries d JOIN submissions s ON s.id = d.submission_id"
                    " WHERE s.session_id = ? AND d.state = 'pending' LIMIT 1",
                    (sid,),
                ).fetchone()
                if pending:
                    continue  # never drop a submission that has not reached its sinks
                conn.execute("DELETE FROM commands WHERE session_id = ?", (sid,))
                conn.execute(
                    "DELETE FROM deliveries WHERE submission_id IN"
                    " (SELECT id FROM submissions WHERE session_id = ?)",
                    (sid,),
                )
                conn.execute("DELETE FROM submissions WHERE session_id = ?", (sid,))
                conn.execute("DELETE FROM sessions WHERE id = ?", (sid,))
                removed += 1
            return removed

        return await self.run(work)

    async def writable(self) -> bool:
        """Whether a write transaction commits right now (for /healthz)."""

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute("UPDATE meta SET value = value WHERE key = 'schema'")
            return True

        try:
            return await asyncio.wait_for(self.run(work), timeout=2.0)
        except Exception:
            return False
