"""The PostgreSQL store: what the SQLite store holds, on asyncpg with a pool.

Each step is one statement (data-modifying CTEs: the session upsert, its commands, its
submission and deliveries), so it is one transaction and one round trip, durable when
PostgreSQL acknowledges its commit. Several instances may share the database (`shared`):
a step made from a session's version writes only if that is still the stored version
(else Conflict: decide again), work is claimed under leases (postgres_claims.py), and a
committed step sends notices (postgres_notices.py). A value PostgreSQL refuses for what it is (a
constraint, a value it cannot take) is StoreRefused, as the SQLite store's; any other
error (the server down or restarting, a timeout) is the store's state at the moment.
The schema is migrated at open() (postgres_migrations.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg
import structlog

from collector.adapters.store.postgres_claims import Claims
from collector.adapters.store.postgres_deliveries import Deliveries
from collector.adapters.store.postgres_migrations import MIGRATIONS, current_version, upgrade
from collector.adapters.store.postgres_notices import NoticeHub
from collector.adapters.store.postgres_sql import (
    PRUNE_LOCK_KEY,
    PreparedStep,
    newest_first,
    prepare_step,
    prune_statements,
)
from collector.adapters.store.problems import (
    READY_TIMEOUT_SECONDS,
    DatabaseUnavailable,
    SchemaTooNew,
    schema_problem,
)
from collector.adapters.store.rows import command_row, dead_event_row
from collector.config import DatabaseUrl, parse_database_url
from collector.core.session.commands import Command
from collector.core.session.model import Session
from collector.core.session.submission import Submission
from collector.errors import StoreRefused
from collector.ports import (
    NoticeCallback,
)
from collector.records import CommandRow, Conflict, DeadEventRow, StoredSession

log = structlog.get_logger("collector.store")

CONNECT_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 30.0  # a hung server fails a query (retried), never hangs a worker
CLOSE_TIMEOUT_SECONDS = 10.0

# What PostgreSQL (or asyncpg, before sending) raises when it refuses the rows themselves:
# class 22 (data exception: a NUL in text, a number out of range), class 23 (a constraint),
# an argument asyncpg cannot encode. The same rows fail the same way on every redelivery.
STORE_REFUSALS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions._base.DataError,
    OverflowError,
)


def unavailable(
    db: DatabaseUrl, exc: BaseException, doing: str = "cannot connect to"
) -> DatabaseUnavailable:
    """A one-line DatabaseUnavailable naming the hosts, never the password."""
    detail = db.scrub((f"{type(exc).__name__}: {exc}".splitlines() or [""])[0])
    return DatabaseUnavailable(f"{doing} PostgreSQL at {db.hosts} ({db.shown}): {detail}")


def _count(status: str) -> int:
    """The row count of a command tag ("UPDATE 3", "INSERT 0 1")."""
    return int(status.rsplit(" ", 1)[-1])


def new_instance_id() -> str:
    """An id for this process's claims: unique, and telling where it runs."""
    import os
    import socket

    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PostgresStore(Claims, Deliveries):
    """Durable state of every call, in a PostgreSQL database (collector.ports.SessionStore,
    ClaimStore and Notices), shared by any number of instances."""

    shared = True

    def __init__(
        self,
        url: str | DatabaseUrl,
        *,
        pool_size: int = 10,
        on_commit: Callable[[float, int], None] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        instance: str | None = None,
    ) -> None:
        self.db = url if isinstance(url, DatabaseUrl) else parse_database_url(url)
        self.pool_size = pool_size
        self.on_commit = on_commit  # (seconds a write's commit took, steps it made durable)
        self.connect_timeout = connect_timeout
        self.instance = instance or new_instance_id()
        self.schema: tuple[int, int] | None = None  # (version before open, after)
        self._pool: asyncpg.Pool | None = None
        self._notices = NoticeHub(self.db, self.instance, connect_timeout)

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Open the pool and bring the schema up to date (refused if it is newer)."""
        try:
            pool = await asyncio.wait_for(
                asyncpg.create_pool(
                    self.db.target,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self.connect_timeout,
                    command_timeout=COMMAND_TIMEOUT_SECONDS,
                ),
                self.connect_timeout * 2,
            )
        except Exception as exc:
            raise unavailable(self.db, exc) from None
        try:
            async with pool.acquire() as conn:
                self.schema = await upgrade(conn)
        except SchemaTooNew:
            await _close_pool(pool)
            raise
        except Exception as exc:
            await _close_pool(pool)
            raise unavailable(self.db, exc, "cannot migrate the schema of") from None
        self._pool = pool
        self._notices = NoticeHub(self.db, self.instance, self.connect_timeout)

    async def close(self) -> None:
        await self._notices.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await _close_pool(pool)

    async def listen(self, channel: str, callback: NoticeCallback, *, own: bool = False) -> None:
        """Hear the notices on `channel` (collector.ports.Notices)."""
        await self._notices.listen(channel, callback, own=own)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    async def writable(self) -> bool:
        """Whether a write transaction commits right now (for /healthz)."""
        try:
            async with asyncio.timeout(2.0):
                await self.pool.execute(
                    "UPDATE schema_version SET applied_at = applied_at WHERE version = 1"
                )
            return True
        except Exception:
            return False

    async def ready(self) -> tuple[str, str] | None:
        """None when the server answers a read of the schema's version within a couple of
        seconds, and it is this code's (for /readyz); else (code, message), no password."""
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                async with self.pool.acquire() as conn:
                    found = await current_version(conn)
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no answer within {READY_TIMEOUT_SECONDS:.0f} s")
            return "store_unavailable", str(unavailable(self.db, exc, "cannot reach"))
        return schema_problem(found, len(MIGRATIONS))

    async def _write(self, sql: str, *args: Any) -> str:
        started = time.perf_counter()
        status: str = await self.pool.execute(sql, *args)
        self._committed(started)
        return status

    def _committed(self, started: float) -> None:
        if self.on_commit is not None:
            try:
                self.on_commit(time.perf_counter() - started, 1)
            except Exception:  # a metric must never fail a write that is durable
                log.exception("commit_report_failed")

    # -- sessions and events --------------------------------------------------------

    async def commit_step(
        self,
        session: Session,
        commands: Iterable[Command] = (),
        submission: Submission | None = None,
        sinks: Iterable[str] = (),
        version: int | None = None,
    ) -> int | Conflict:
        """Save one decision atomically: the session, its outbox rows, its submission (the
        event's id is in the session's event_ids, as in the SQLite store)."""
        return await self.commit_rows(self.step_rows(session, commands, submission, sinks, version))

    def step_rows(
        self,
        session: Session,
        commands: Iterable[Command] = (),
        submission: Submission | None = None,
        sinks: Iterable[str] = (),
        version: int | None = None,
    ) -> PreparedStep:
        """The one statement a step is (postgres_sql.prepare_step) and its arguments,
        everything serialised; a value that cannot be serialised raises here."""
        return prepare_step(session, commands, submission, sinks, version)

    async def commit_rows(self, rows: PreparedStep) -> int | Conflict:
        """Write one step_rows() as one transaction: the session's new version, or Conflict
        with what is stored now; StoreRefused when PostgreSQL refuses the rows themselves."""
        started = time.perf_counter()
        try:
            row = await self.pool.fetchrow(rows.sql, *rows.args)
        except STORE_REFUSALS as exc:
            raise StoreRefused(f"{type(exc).__name__}: {exc}") from exc
        self._committed(started)
        assert row is not None
        if row[0] is None:
            body = row["stored_body"]
            if body is None:
                return Conflict(None)
            return Conflict(StoredSession(Session.model_validate_json(body), row["stored_version"]))
        for channel, ident in rows.notices:
            self._notices.post(channel, ident)
        version: int = row[0]
        return version

    async def record_seen(self, event_id: str, call_control_id: str, at: float) -> bool:
        status = await self._write(
            "INSERT INTO seen_events (id, call_control_id, received_at) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            event_id,
            call_control_id,
            at,
        )
        return _count(status) == 1

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
        status = await self._write(
            "INSERT INTO dead_events (event_id, call_control_id, session_id, event_type, stage,"
            " error, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            event_id,
            call_control_id,
            session_id,
            event_type,
            stage,
            error,
            at,
        )
        return _count(status) == 1

    async def list_dead_events(
        self,
        *,
        event_type: str | None = None,
        since: float | None = None,
        limit: int = 50,
        before: tuple[float, int] | None = None,
    ) -> list[DeadEventRow]:
        sql, args = newest_first(
            "SELECT * FROM dead_events", "received_at", {"event_type": event_type}, since, before
        )
        return [dead_event_row(r) for r in await self.pool.fetch(sql, *args, limit)]

    async def session_by_call(self, call_control_id: str) -> Session | None:
        body = await self.pool.fetchval(
            "SELECT body FROM sessions WHERE call_control_id = $1", call_control_id
        )
        return Session.model_validate_json(body) if body is not None else None

    async def stored_by_call(self, call_control_id: str) -> StoredSession | None:
        row = await self.pool.fetchrow(
            "SELECT body, version FROM sessions WHERE call_control_id = $1", call_control_id
        )
        if row is None:
            return None
        return StoredSession(Session.model_validate_json(row[0]), row[1])

    async def session(self, session_id: str) -> Session | None:
        body = await self.pool.fetchval("SELECT body FROM sessions WHERE id = $1", session_id)
        return Session.model_validate_json(body) if body is not None else None

    async def sessions_with_deadlines(self) -> list[Session]:
        rows = await self.pool.fetch("SELECT body FROM sessions WHERE deadline IS NOT NULL")
        return [Session.model_validate_json(r[0]) for r in rows]

    async def list_sessions(
        self,
        *,
        state: str | None = None,
        form: str | None = None,
        since: float | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[Session]:
        sql, args = newest_first(
            "SELECT body FROM sessions", "started_at", {"state": state, "form": form}, since, before
        )
        rows = await self.pool.fetch(sql, *args, limit)
        return [Session.model_validate_json(r[0]) for r in rows]

    async def count_sessions_by_state(self) -> dict[str, int]:
        rows = await self.pool.fetch("SELECT state, COUNT(*) FROM sessions GROUP BY state")
        return {r[0]: r[1] for r in rows}

    # -- command outbox -------------------------------------------------------------

    async def pending_commands(self, call_control_id: str | None = None) -> list[CommandRow]:
        if call_control_id is None:
            rows = await self.pool.fetch(
                "SELECT * FROM commands WHERE state = 'pending' ORDER BY call_control_id, seq"
            )
        else:
            rows = await self.pool.fetch(
                "SELECT * FROM commands WHERE state = 'pending' AND call_control_id = $1"
                " ORDER BY seq",
                call_control_id,
            )
        return [command_row(r) for r in rows]

    async def finish_command(
        self,
        session_id: str,
        seq: int,
        state: str,
        at: float,
        attempts: int,
        error: str | None = None,
    ) -> None:
        await self._write(
            "UPDATE commands SET state = $1, updated_at = $2, attempts = $3, last_error = $4,"
            " claimed_by = NULL, lease_until = NULL WHERE session_id = $5 AND seq = $6",
            state,
            at,
            attempts,
            error,
            session_id,
            seq,
        )

    async def commands_for(self, session_id: str) -> list[CommandRow]:
        rows = await self.pool.fetch(
            "SELECT * FROM commands WHERE session_id = $1 ORDER BY seq", session_id
        )
        return [command_row(r) for r in rows]

    # -- housekeeping ---------------------------------------------------------------

    async def prune(self, now: float, retention_days: float, seen_days: float = 1.0) -> int:
        horizon = now - retention_days * 86400
        seen, dead, sessions = prune_statements()
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PRUNE_LOCK_KEY):
                return 0  # another instance is pruning right now
            await conn.execute(seen, now - seen_days * 86400)
            await conn.execute(dead, horizon)
            removed: int = await conn.fetchval(sessions, horizon)
        return removed


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_SECONDS)
    except Exception:
        pool.terminate()


__all__ = [
    "STORE_REFUSALS",
    "DatabaseUnavailable",
    "PostgresStore",
    "SchemaTooNew",
    "unavailable",
]
