"""Which store a `database_url` names, and its schema: make, check, status, upgrade.

`sqlite:///file` is the SQLite store, `postgresql://` or `postgres://` the PostgreSQL
one (imported only then). What goes wrong opening either comes back as one line that
never holds the URL's password (`problem()`), for start-up and the CLI to print.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.adapters.store.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from collector.adapters.store.problems import DatabaseUnavailable, SchemaTooNew
from collector.adapters.store.sqlite import SqliteStore
from collector.config import DatabaseUrl
from collector.ports import SessionStore

if TYPE_CHECKING:
    import asyncpg


def make_store(
    db: DatabaseUrl,
    *,
    synchronous: str = "FULL",
    pool_size: int = 10,
    on_commit: Callable[[float, int], None] | None = None,
    instance: str | None = None,
) -> SessionStore:
    """The store `db` names, not yet opened (`instance`: this process's id in a shared
    store's claims; a new one if None)."""
    if db.kind == "postgresql":
        from collector.adapters.store.postgres import PostgresStore

        return PostgresStore(db, pool_size=pool_size, on_commit=on_commit, instance=instance)
    return SqliteStore(db.target, synchronous=synchronous, on_commit=on_commit)


def problem(db: DatabaseUrl, exc: BaseException) -> str:
    """What went wrong opening `db`, in one line without its password."""
    if isinstance(exc, DatabaseUnavailable | SchemaTooNew):
        text = str(exc)
    else:
        text = f"{db.shown}: {type(exc).__name__}: {exc}"
    return db.scrub((text.splitlines() or [type(exc).__name__])[0])


async def check(db: DatabaseUrl) -> str | None:
    """Open the store (creating or migrating its schema) and close it again: None when
    that worked, else the problem in one line."""
    store = make_store(db, pool_size=1)
    try:
        await store.open()
    except Exception as exc:
        return problem(db, exc)
    await store.close()
    return None


async def status(db: DatabaseUrl) -> tuple[int, int]:
    """(the database's schema version, this collector's); 0: no schema yet."""
    if db.kind == "sqlite":
        return _sqlite_version(db.target), len(SQLITE_MIGRATIONS)
    from collector.adapters.store import postgres_migrations

    conn = await _connect(db)
    try:
        found = await postgres_migrations.current_version(conn)
    finally:
        await conn.close()
    return found, len(postgres_migrations.MIGRATIONS)


async def upgrade(db: DatabaseUrl) -> tuple[int, int]:
    """Apply the pending migrations; (version before, after). SchemaTooNew if the
    database is ahead of this collector."""
    if db.kind == "sqlite":
        before = _sqlite_version(db.target)
        if before > len(SQLITE_MIGRATIONS):
            raise SchemaTooNew(before, len(SQLITE_MIGRATIONS))
        store = SqliteStore(db.target)
        await store.open()  # migrates, in the writer's transaction
        await store.close()
        return before, _sqlite_version(db.target)
    from collector.adapters.store import postgres_migrations

    conn = await _connect(db)
    try:
        return await postgres_migrations.upgrade(conn)
    finally:
        await conn.close()


async def _connect(db: DatabaseUrl) -> asyncpg.Connection[Any]:
    import asyncpg

    from collector.adapters.store.postgres import CONNECT_TIMEOUT_SECONDS, unavailable

    try:
        return await asyncpg.connect(db.target, timeout=CONNECT_TIMEOUT_SECONDS)
    except Exception as exc:
        raise unavailable(db, exc) from None


def _sqlite_version(path: str) -> int:
    if path == ":memory:" or not Path(path).exists():
        return 0
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
