"""The PostgreSQL sink: one row per submission, upserted on its id, through an asyncpg pool.

A database that is down at start-up does not stop the server: `start()` tries once to
open the pool and create the table, and on failure leaves that for the first delivery,
which raises a retryable DeliveryError until the database answers. The DSN is checked
when the configuration is read; it is never echoed in messages (it may hold a password).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson

from collector.sinks import DeliveryError, Submission
from collector.sinks.sqlite import stored_submission, text_or_none

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONNECT_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 10.0
STATEMENT_TIMEOUT_SECONDS = 30.0  # a hung database is a retryable failure, not a stuck worker
# What a database that is down, unreachable or refusing us raises.
UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
CREATED_MEANWHILE = (
    asyncpg.UniqueViolationError,
    asyncpg.DuplicateTableError,
    asyncpg.DuplicateSchemaError,
)


def check_dsn(dsn: Any) -> str:
    """`dsn` if it is a postgresql:// or postgres:// URL that parses, else ValueError."""
    hint = "option 'dsn' must be a URL like postgresql://user:password@host:5432/dbname"
    if not isinstance(dsn, str) or not dsn.strip():
        raise ValueError(f"{hint} (got {type(dsn).__name__ if dsn is not None else 'nothing'})")
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{hint}; it does not parse: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ValueError(f"{hint} (got {shown})")
    if parts.fragment:
        raise ValueError(f"{hint} (it has a #fragment)")
    return dsn


def split_table(table: Any) -> tuple[str | None, str]:
    """`table` or `schema.table`, each part a plain SQL identifier, else ValueError."""
    parts = table.split(".") if isinstance(table, str) else []
    if not 1 <= len(parts) <= 2 or not all(IDENTIFIER.fullmatch(p) for p in parts):
        raise ValueError(
            "option 'table' must be a plain SQL identifier or schema.table"
            f" (letters, digits, _), got {table!r}"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


class PostgresSink:
    """Upserts each submission as one row of `table` in the database at `dsn`."""

    def __init__(
        self,
        dsn: str,
        table: str = "submissions",
        *,
        pool_min: int = 1,
        pool_max: int = 8,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self.dsn = check_dsn(dsn)
        self.schema, self.table = split_table(table)
        self.pool_min = pool_min
        self.pool_max = pool_max
        self.connect_timeout = connect_timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        qualified = f'"{self.schema}"."{self.table}"' if self.schema else f'"{self.table}"'
        self._ddl = [
            *([f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'] if self.schema else []),
            f"CREATE TABLE IF NOT EXISTS {qualified} ("
            " submission_id TEXT PRIMARY KEY,"
            " form TEXT,"
            " form_version TEXT,"
            " status TEXT,"
            " data JSONB,"
            " submission JSONB NOT NULL,"
            " delivered_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        ]
        self._upsert = (
            f"INSERT INTO {qualified} (submission_id, form, form_version, status, data, submission)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)"
            " ON CONFLICT (submission_id) DO UPDATE SET"
            " form = EXCLUDED.form, form_version = EXCLUDED.form_version,"
            " status = EXCLUDED.status, data = EXCLUDED.data,"
            " submission = EXCLUDED.submission, delivered_at = now()"
        )

    @property
    def where(self) -> str:
        """The table, for messages (never the DSN: it may hold a password)."""
        return f"{self.schema}.{self.table}" if self.schema else self.table

    async def _connect(self) -> asyncpg.Pool:
        """Open the pool and create the table if missing; raises whatever went wrong."""
        pool = await asyncio.wait_for(
            asyncpg.create_pool(
                self.dsn,
                min_size=self.pool_min,
                max_size=self.pool_max,
                timeout=self.connect_timeout,
            ),
            self.connect_timeout * 2,
        )
        try:
            async with pool.acquire() as conn:
                for statement in self._ddl:
                    # Another process may create it at the same moment.
                    with contextlib.suppress(*CREATED_MEANWHILE):
                        await conn.execute(statement)
        except BaseException:
            await _close_pool(pool)
            raise
        return pool

    async def start(self) -> None:
        """Try to open the pool now; if the database is down, leave it for the first delivery."""
        async with self._lock:
            if self._pool is None:
                try:
                    self._pool = await self._connect()
                except UNAVAILABLE:
                    self._pool = None

    async def _ready_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                try:
                    self._pool = await self._connect()
                except UNAVAILABLE as exc:
                    raise DeliveryError(
                        f"postgres ({self.where}): cannot connect: {type(exc).__name__}: {exc}"
                    ) from exc
            return self._pool

    async def deliver(self, submission: Submission) -> None:
        doc = stored_submission(submission)
        try:
            args = (
                str(doc["submission_id"]),
                text_or_none(doc.get("form")),
                text_or_none(doc.get("form_version")),
                text_or_none(doc.get("status")),
                orjson.dumps(doc.get("data")).decode(),
                orjson.dumps(doc).decode(),
            )
        except (KeyError, TypeError) as exc:
            raise DeliveryError(f"submission cannot be stored: {exc}", retryable=False) from exc
        pool = await self._ready_pool()
        try:
            async with pool.acquire(timeout=STATEMENT_TIMEOUT_SECONDS) as conn:
                await conn.execute(self._upsert, *args, timeout=STATEMENT_TIMEOUT_SECONDS)
        except asyncpg.UndefinedTableError as exc:
            # The table went away under us: open afresh (and re-create it) on the next try.
            await self._reset(pool)
            raise DeliveryError(f"postgres ({self.where}): {exc}") from exc
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            # The row itself is refused (e.g. a NUL character in JSON): trying again won't help.
            raise DeliveryError(
                f"postgres ({self.where}) refused the submission: {type(exc).__name__}: {exc}",
                retryable=False,
            ) from exc
        except UNAVAILABLE as exc:
            raise DeliveryError(f"postgres ({self.where}): {type(exc).__name__}: {exc}") from exc

    async def _reset(self, pool: asyncpg.Pool) -> None:
        async with self._lock:
            if self._pool is pool:
                self._pool = None
        await _close_pool(pool)

    async def close(self) -> None:
        async with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            await _close_pool(pool)


async def _close_pool(pool: asyncpg.Pool) -> None:
    try:
        await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_SECONDS)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        pool.terminate()


def _pool_size(options: dict[str, Any], key: str, default: int, least: int) -> int:
    value = options.pop(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"option {key!r} must be an integer >= {least}, got {value!r}")
    return value


def from_config(*, name: str, options: dict[str, Any], base_dir: Path) -> PostgresSink:
    """`[[sinks]] type = "postgres"`: `dsn` (required), `table`, `pool_min`, `pool_max`."""
    if "dsn" not in options:
        unknown = sorted(set(options) - {"table", "pool_min", "pool_max"})
        extra = f"; unknown option(s): {', '.join(unknown)}" if unknown else ""
        raise ValueError(f"missing required option 'dsn' (a postgresql:// URL){extra}")
    dsn = check_dsn(options.pop("dsn"))
    schema, table = split_table(options.pop("table", "submissions"))
    pool_min = _pool_size(options, "pool_min", 1, 0)
    pool_max = _pool_size(options, "pool_max", max(8, pool_min), 1)
    if options:
        raise ValueError(f"unknown option(s) for postgres: {', '.join(sorted(options))}")
    if pool_min > pool_max:
        raise ValueError(f"option 'pool_min' ({pool_min}) is larger than 'pool_max' ({pool_max})")
    return PostgresSink(
        dsn, f"{schema}.{table}" if schema else table, pool_min=pool_min, pool_max=pool_max
    )
