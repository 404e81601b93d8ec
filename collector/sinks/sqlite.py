"""The SQLite sink: one row per submission in a local database file, upserted on its id.

Uses the standard library's sqlite3 on a worker thread (one connection, one write at a
time), in WAL mode with full fsync, so a delivery that returned is on disk. Delivering the
same submission again (an outbox redelivery after a crash, or an operator's replay)
rewrites the same row: there is never more than one row per `submission_id`.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from collector.sinks import DeliveryError, Submission

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keys the outbox adds to a replayed delivery; they describe the delivery, not the submission.
DELIVERY_KEYS = ("replay", "delivery_key")


def stored_submission(submission: Submission) -> Submission:
    """The submission as a database sink stores it: without the outbox's replay markers."""
    if not any(k in submission for k in DELIVERY_KEYS):
        return submission
    stored = submission.copy()
    stored.pop("replay", None)
    stored.pop("delivery_key", None)
    return stored


def text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


class SqliteSink:
    """Upserts each submission as one row of `table` in the SQLite file at `path`."""

    def __init__(self, path: Path, table: str = "submissions") -> None:
        if not IDENTIFIER.fullmatch(table):
            raise ValueError(f"table {table!r} is not a plain SQL identifier")
        self.path = path
        self.table = table
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        t = f'"{table}"'
        self._create = (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " submission_id TEXT PRIMARY KEY,"
            " form TEXT,"
            " form_version TEXT,"
            " status TEXT,"
            " started_at TEXT,"
            " ended_at TEXT,"
            " data JSON,"
            " submission JSON NOT NULL,"
            " created_at TEXT NOT NULL,"
            " updated_at TEXT NOT NULL)"
        )
        self._upsert = (
            f"INSERT INTO {t} (submission_id, form, form_version, status, started_at,"
            " ended_at, data, submission, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (submission_id) DO UPDATE SET"
            " form = excluded.form, form_version = excluded.form_version,"
            " status = excluded.status, started_at = excluded.started_at,"
            " ended_at = excluded.ended_at, data = excluded.data,"
            " submission = excluded.submission, updated_at = excluded.updated_at"
        )

    # -- worker-thread side -------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(self._create)
        except BaseException:
            conn.close()
            raise
        return conn

    def _write(self, row: tuple[Any, ...]) -> None:
        assert self._conn is not None
        with self._conn:  # one transaction; commits on success, rolls back on error
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(self._upsert, row)

    # -- event-loop side ----------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            if self._conn is None:
                self._conn = await asyncio.to_thread(self._open)

    async def deliver(self, submission: Submission) -> None:
        doc = stored_submission(submission)
        try:
            sid = doc["submission_id"]
            data_json = orjson.dumps(doc.get("data")).decode()
            doc_json = orjson.dumps(doc).decode()
        except (KeyError, TypeError) as exc:
            raise DeliveryError(f"submission cannot be stored: {exc}", retryable=False) from exc
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        row = (
            str(sid),
            text_or_none(doc.get("form")),
            text_or_none(doc.get("form_version")),
            text_or_none(doc.get("status")),
            text_or_none(doc.get("started_at")),
            text_or_none(doc.get("ended_at")),
            data_json,
            doc_json,
            now,
            now,
        )
        async with self._lock:
            try:
                if self._conn is None:
                    self._conn = await asyncio.to_thread(self._open)
                await asyncio.to_thread(self._write, row)
            except sqlite3.Error as exc:
                raise DeliveryError(f"sqlite {self.path}: {exc}") from exc

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await asyncio.to_thread(conn.close)


def from_config(*, name: str, options: dict[str, Any], base_dir: Path) -> SqliteSink:
    """`[[sinks]] type = "sqlite"`, options `path` (default results.db), `table` (submissions)."""
    path = options.pop("path", "results.db")
    table = options.pop("table", "submissions")
    if options:
        raise ValueError(f"unknown option(s) for sqlite: {', '.join(sorted(options))}")
    if not isinstance(path, str) or not path:
        raise ValueError("option 'path' must be a non-empty string")
    if not isinstance(table, str) or not IDENTIFIER.fullmatch(table):
        raise ValueError(
            f"option 'table' must be a plain SQL identifier (letters, digits, _), got {table!r}"
        )
    p = Path(path).expanduser()
    return SqliteSink(p if p.is_absolute() else base_dir / p, table)
