"""The writer thread outlives a failing error path: a ROLLBACK that raises, a connection a
job closed, an exception that is not an `Exception`. Each time the group's jobs get the
error, the connection is replaced if it is left unusable, and later jobs commit.

The failures are real SQLite states, reached through the store's own `run()`; the writer
has no injection seam. A ROLLBACK fails for real while the connection is interrupted
(`sqlite3_interrupt`) and one of its statements is still in progress: SQLite then fails
every statement on it, ROLLBACK included, with SQLITE_INTERRUPT.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from collector.adapters.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

Job = Callable[[sqlite3.Connection], Any]


def insert(value: str) -> Job:
    def job(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (?)", (value,))

    return job


def interrupted_midway(conn: sqlite3.Connection) -> None:
    """Writes, leaves a read in progress, interrupts the connection, writes again (fails)."""
    conn.execute("INSERT INTO t VALUES ('broken')")
    reading = conn.execute("SELECT x FROM t")
    reading.fetchone()  # one row of several: the statement stays in progress
    conn.interrupt()
    conn.execute("INSERT INTO t VALUES ('never')")  # OperationalError: interrupted


async def opened(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    await store.open()
    await store.run(lambda conn: conn.execute("CREATE TABLE t (x TEXT)").fetchall())
    for i in range(3):
        await store.run(insert(f"before-{i}"))
    return store


async def group(store: SqliteStore, *jobs: Job) -> list[Any]:
    """The jobs in one writer group (one event-loop turn); a dead writer fails the test."""
    runs = [store.run(job) for job in jobs]
    return await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), 20)


def rows(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in conn.execute("SELECT x FROM t"))
    finally:
        conn.close()


async def later_jobs_commit(store: SqliteStore, path: Path) -> None:
    assert store._writer is not None and store._writer.is_alive()
    results = await group(store, insert("after-0"), insert("after-1"))
    assert results == [None, None]
    await asyncio.wait_for(store.run(insert("after-2")), 20)
    await store.close()
    # nothing committed before is lost, nothing of the failed group landed
    assert rows(path) == [f"{w}-{i}" for w in ("after", "before") for i in range(3)]


def test_an_interrupted_connection_with_a_statement_in_progress_cannot_roll_back(
    tmp_path: Path,
) -> None:
    """The fault itself, on a bare connection: ROLLBACK raises and the transaction stays."""
    conn = sqlite3.connect(tmp_path / "bare.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("INSERT INTO t VALUES ('a'), ('b')")
    conn.execute("BEGIN IMMEDIATE")
    # the traceback holds the job's frame, and so its statement in progress
    with pytest.raises(sqlite3.OperationalError, match="interrupted") as failed:
        interrupted_midway(conn)
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        conn.execute("ROLLBACK")
    assert conn.in_transaction
    del failed  # the statement is let go: now the ROLLBACK goes through
    conn.execute("ROLLBACK")
    assert [r[0] for r in conn.execute("SELECT x FROM t")] == ["a", "b"]
    conn.close()


async def test_a_rollback_that_raises_fails_the_group_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "collector.db"
    store = await opened(path)
    with structlog.testing.capture_logs() as logged:
        results = await group(store, insert("same-group"), interrupted_midway, insert("last"))
    # every job of the group got the error (none of them is committed)
    assert [type(r) for r in results] == [sqlite3.OperationalError] * 3, results
    assert all("interrupted" in str(r) for r in results), results
    # the writer's own ROLLBACK raised: that is what used to end the thread
    assert [e["event"] for e in logged] == ["store_rollback_failed"], logged
    del results
    await later_jobs_commit(store, path)


async def test_a_job_that_closes_the_connection_does_not_stop_the_writer(
    tmp_path: Path,
) -> None:
    """The error path finds the connection closed (in_transaction itself raises)."""
    path = tmp_path / "collector.db"
    store = await opened(path)

    def closes(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES ('closed-with-it')")
        conn.close()

    results = await group(store, insert("same-group"), closes)
    assert [type(r) for r in results] == [sqlite3.ProgrammingError] * 2, results
    await later_jobs_commit(store, path)


class Fatal(BaseException):
    """Not an Exception: no `except Exception` in the writer catches it."""


async def test_a_job_raising_a_base_exception_fails_its_group_only(tmp_path: Path) -> None:
    path = tmp_path / "collector.db"
    store = await opened(path)

    def fatal(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES ('fatal')")
        raise Fatal("not an Exception")

    results = await group(store, insert("same-group"), fatal)
    assert [type(r) for r in results] == [Fatal, Fatal], results
    await later_jobs_commit(store, path)
