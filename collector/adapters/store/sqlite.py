"""The SQLite store: sessions, seen events, the command outbox, submissions and deliveries.

Every write, and every read but the engine's lookup of a session by call, is a job for
one writer thread (store/jobs.py hands them over, store/writer.py commits them in groups),
and each caller is answered only once its job is durable (WAL, synchronous=FULL by
default). aiosqlite would give us the thread but not the grouping.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson

from collector.adapters.store.jobs import WriterJobs
from collector.adapters.store.migrations import MIGRATIONS
from collector.adapters.store.problems import READY_TIMEOUT_SECONDS, schema_problem
from collector.adapters.store.rows import command_row, dead_event_row, delivery_row
from collector.adapters.store.writer import Rows
from collector.core.session.commands import Command
from collector.core.session.model import Session
from collector.core.session.submission import Submission
from collector.errors import StoreRefused
from collector.records import CommandRow, DeadEventRow, DeliveryRow, StoredSession

R = TypeVar("R")

# What SQLite raises when it refuses the rows themselves (a constraint, a value it cannot
# bind): the same rows fail the same way on every redelivery, and commit_rows() raises
# StoreRefused from it. Anything else (an OperationalError: locked, I/O error, disk full; a
# store that is closed) is the store's state at the moment, and the event is worth
# redelivering.
STORE_REFUSALS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    OverflowError,
)


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


def _value(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
    """The first column of the first row, or None."""
    row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def _records(
    conn: sqlite3.Connection, sql: str, args: Sequence[Any], make: Callable[[sqlite3.Row], R]
) -> list[R]:
    """Every row, read by column name and turned into a record by `make`."""
    conn.row_factory = sqlite3.Row
    try:
        return [make(row) for row in conn.execute(sql, args)]
    finally:
        conn.row_factory = None


class SqliteStore(WriterJobs):
    """Durable state of every call, in one SQLite file (collector.ports.SessionStore).

    One process owns the file (`shared` False): the engine's per-call lock keeps a call's
    steps apart, so the store keeps no versions (0) and answers no Conflict."""

    shared = False

    # -- sessions and events --------------------------------------------------------

    async def commit_step(
        self,
        session: Session,
        commands: Iterable[Command] = (),
        submission: Submission | None = None,
        sinks: Iterable[str] = (),
        version: int | None = None,
    ) -> int:
        """Save one decision atomically: the session, its outbox rows, its submission.

        The event's id is in the session (`event_ids`, how decide() spots a redelivery), so
        it needs no row of its own: `seen_events` holds only events that reached no session.
        """
        return await self.commit_rows(self.step_rows(session, commands, submission, sinks))

    async def commit_rows(self, rows: Rows) -> int:
        """Write the rows of step_rows() in one transaction, once durable; StoreRefused
        when SQLite refuses the rows themselves. No versions here: 0."""
        try:
            await self._submit(rows)
        except STORE_REFUSALS as exc:
            raise StoreRefused(f"{type(exc).__name__}: {exc}") from exc
        return 0

    @staticmethod
    def step_rows(
        session: Session,
        commands: Iterable[Command] = (),
        submission: Submission | None = None,
        sinks: Iterable[str] = (),
        version: int | None = None,
    ) -> Rows:
        """One decision as rows: everything serialised, nothing written yet. A value that
        cannot be serialised raises here, and would the same way on every redelivery.
        `version` is not checked: this store is one process's own."""
        rows = Rows(sessions=[_session_row(session)])
        ccid = session.call.call_control_id
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
        return rows

    # -- dead events ------------------------------------------------------------------

    async def record_dead(
        self,
        event_id: str,
        call_control_id: str,
        event_type: str,
        stage: str,
        error: str,
        at: float,
        session_id: str | None = None,
    ) -> bool:
        """Keep an event that can never apply; False if it was recorded before."""

        def work(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO dead_events (event_id, call_control_id, session_id,"
                " event_type, stage, error, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, call_control_id, session_id, event_type, stage, error, at),
            )
            return cur.rowcount == 1

        return await self.run(work)

    async def list_dead_events(
        self,
        *,
        event_type: str | None = None,
        since: float | None = None,
        limit: int = 50,
        before: tuple[float, int] | None = None,
    ) -> list[DeadEventRow]:
        """Newest first; `before` is the (received_at, id) cursor of the last page."""
        sql, args = _newest_first(
            "SELECT * FROM dead_events", "received_at", {"event_type": event_type}, since, before
        )
        args.append(limit)
        return await self.run(lambda conn: _records(conn, sql, args, dead_event_row))

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
        rows = await self.read_now(
            "SELECT body FROM sessions WHERE call_control_id = ?", (call_control_id,)
        )
        return Session.model_validate_json(rows[0][0]) if rows else None

    async def stored_by_call(self, call_control_id: str) -> StoredSession | None:
        session = await self.session_by_call(call_control_id)
        return StoredSession(session, 0) if session is not None else None

    async def session(self, session_id: str) -> Session | None:
        sql = "SELECT body FROM sessions WHERE id = ?"
        body = await self.run(lambda conn: _value(conn, sql, (session_id,)))
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
        sql, args = _newest_first(
            "SELECT body FROM sessions", "started_at", {"state": state, "form": form}, since, before
        )
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

        return await self.run(lambda conn: _records(conn, sql, args, command_row))

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
        await self._submit(Rows(finished=[(state, at, attempts, error, session_id, seq)]))

    async def commands_for(self, session_id: str) -> list[CommandRow]:
        sql = "SELECT * FROM commands WHERE session_id = ? ORDER BY seq"
        return await self.run(lambda conn: _records(conn, sql, (session_id,), command_row))

    # -- submissions and deliveries ---------------------------------------------------

    async def submission(self, submission_id: str) -> Submission | None:
        sql = "SELECT body FROM submissions WHERE id = ?"
        body = await self.run(lambda conn: _value(conn, sql, (submission_id,)))
        return orjson.loads(body) if body else None

    async def poll_deliveries(
        self, now: float, limit: int = 100
    ) -> tuple[list[DeliveryRow], float | None]:
        """The due deliveries, and when the next one not yet due will be, in one job."""

        def work(conn: sqlite3.Connection) -> tuple[list[DeliveryRow], float | None]:
            due = _records(
                conn,
                "SELECT d.*, s.body AS submission FROM deliveries d"
                " JOIN submissions s ON s.id = d.submission_id"
                " WHERE d.state = 'pending' AND d.next_at <= ?"
                " ORDER BY d.next_at, d.id LIMIT ?",
                (now, limit),
                delivery_row,
            )
            nxt = _value(
                conn,
                "SELECT MIN(next_at) FROM deliveries WHERE state = 'pending' AND next_at > ?",
                (now,),
            )
            return due, nxt

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
        sql = "SELECT d.*, NULL AS submission FROM deliveries d WHERE submission_id = ? ORDER BY id"
        return await self.run(lambda conn: _records(conn, sql, (submission_id,), delivery_row))

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
        sql = (
            f"SELECT d.*, NULL AS submission FROM deliveries d WHERE state IN ({marks})"
            " ORDER BY d.created_at, d.id"
        )
        return await self.run(lambda conn: _records(conn, sql, states, delivery_row))

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
        """Forget seen event ids after a day, and finished sessions and dead events after
        retention_days."""
        horizon = now - retention_days * 86400

        def work(conn: sqlite3.Connection) -> int:
            conn.execute(
                "DELETE FROM seen_events WHERE received_at < ?", (now - seen_days * 86400,)
            )
            conn.execute("DELETE FROM dead_events WHERE received_at < ?", (horizon,))
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

    async def ready(self) -> tuple[str, str] | None:
        """None when a read (the schema's version, on the loop's read connection) answers
        with this code's schema (for /readyz); else (code, message)."""
        try:
            rows = await asyncio.wait_for(
                self.read_now("PRAGMA user_version", ()), READY_TIMEOUT_SECONDS
            )
        except Exception as exc:
            return "store_unavailable", f"cannot read SQLite at {self.path}: {_reason(exc)}"
        return schema_problem(int(rows[0][0]), len(MIGRATIONS))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {READY_TIMEOUT_SECONDS:.0f} s"
    return (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0][:300]


def _newest_first(
    select: str,
    at: str,
    equal: dict[str, Any],
    since: float | None,
    before: tuple[Any, Any] | None,
) -> tuple[str, list[Any]]:
    """One page of a table newest first by (`at`, id): columns equal to the values given
    (empty ones skipped), `at` >= since, and keyset paging after the `before` cursor.
    The caller appends the LIMIT's value."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in equal.items():
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if since is not None:
        where.append(f"{at} >= ?")
        args.append(since)
    if before is not None:
        where.append(f"({at} < ? OR ({at} = ? AND id < ?))")
        args.extend([before[0], before[0], before[1]])
    sql = select + (" WHERE " + " AND ".join(where) if where else "")
    return f"{sql} ORDER BY {at} DESC, id DESC LIMIT ?", args
