"""The SQLite store itself: group commits, savepoint isolation, migrations, its read
connection. What every store does is in test_contract.py."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from collector.adapters.store.migrations import MIGRATIONS
from collector.adapters.store.sqlite import SqliteStore
from collector.core.session.commands import Command
from collector.core.session.model import CallInfo, Session, State
from collector.errors import StoreRefused

pytestmark = pytest.mark.anyio


def session(n: int, **kw: object) -> Session:
    return Session(
        id=f"s{n}",
        form="contact",
        call=CallInfo(call_control_id=f"v3:c{n}"),
        started_at=1000.0 + n,
        updated_at=1000.0 + n,
        **kw,
    )


async def open_store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "db" / "collector.db")
    await store.open()
    return store


async def test_concurrent_steps_are_all_durable_and_readable_from_a_new_connection(
    tmp_path: Path,
) -> None:
    """Hundreds of concurrent commits (grouped) all reach the file."""
    store = await open_store(tmp_path)
    await asyncio.gather(
        *(
            store.commit_step(session(i), [Command(action="answer", seq=1, decided_at=1.0)])
            for i in range(300)
        )
    )
    await store.close()
    conn = sqlite3.connect(tmp_path / "db" / "collector.db")
    assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 300
    assert conn.execute("SELECT COUNT(*) FROM commands WHERE state='pending'").fetchone()[0] == 300
    # each event's id lives in its session (decide() dedupes there): no row of its own
    assert conn.execute("SELECT COUNT(*) FROM seen_events").fetchone()[0] == 0
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_failing_job_does_not_undo_the_others_in_its_group(tmp_path: Path) -> None:
    """Each job runs in its own savepoint: one error fails only its caller."""
    store = await open_store(tmp_path)

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', '1')")
        raise ValueError("boom")

    results = await asyncio.gather(
        store.commit_step(session(1)),
        store.run(bad),
        store.commit_step(session(2)),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    assert await store.session("s1") is not None and await store.session("s2") is not None
    assert (
        await store.run(
            lambda c: c.execute("SELECT COUNT(*) FROM meta WHERE key='x'").fetchone()[0]
        )
        == 0
    )
    await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database written by a newer collector is not touched."""
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    store = SqliteStore(path)
    with pytest.raises(RuntimeError, match="newer"):
        await store.open()


async def test_a_bad_step_in_a_merged_group_fails_alone(tmp_path: Path) -> None:
    """If the merged rows of a group fail, each step is retried alone: only the bad one fails."""
    store = await open_store(tmp_path)
    bad = {"submission_id": "x", "form": None, "status": "completed"}  # form is NOT NULL
    results = await asyncio.gather(
        *(store.commit_step(session(i)) for i in range(5)),
        store.commit_step(session(99), submission=bad, sinks=["a"]),
        *(store.commit_step(session(i)) for i in range(5, 10)),
        return_exceptions=True,
    )
    # the store's refusal, with SQLite's own error as its cause
    refused = [
        isinstance(r, StoreRefused) and isinstance(r.__cause__, sqlite3.IntegrityError)
        for r in results
    ]
    assert refused == [False] * 5 + [True] + [False] * 5
    for i in range(10):
        assert await store.session(f"s{i}") is not None
    assert await store.session("s99") is None  # the failed step left nothing behind
    await store.close()


async def test_a_session_is_found_by_call_as_soon_as_its_step_is_committed(
    tmp_path: Path,
) -> None:
    """The loop's own read connection sees each commit, and leaves no snapshot open."""
    store = await open_store(tmp_path)
    try:
        assert await store.session_by_call("v3:c1") is None
        for i in range(1, 4):
            await store.commit_step(
                session(1, state=State.GATHERING).model_copy(update={"attempt": i})
            )
            found = await store.session_by_call("v3:c1")
            assert found is not None and found.attempt == i
        # a reader holding a snapshot would keep this checkpoint from resetting the WAL
        other = sqlite3.connect(tmp_path / "db" / "collector.db")
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        other.close()
        assert busy == 0
    finally:
        await store.close()


async def test_each_group_commit_is_reported_with_its_time_and_jobs(tmp_path: Path) -> None:
    """on_commit hears every group once it is durable; a failing listener stops nothing."""
    reports: list[tuple[float, int]] = []

    def on_commit(seconds: float, jobs: int) -> None:
        reports.append((seconds, jobs))
        if len(reports) == 1:
            raise RuntimeError("a broken metrics backend")

    def fails(conn: sqlite3.Connection) -> None:
        raise ValueError("a job that fails in its savepoint")

    store = SqliteStore(tmp_path / "collector.db", on_commit=on_commit)
    await store.open()
    try:
        steps = [store.commit_step(session(i)) for i in range(50)]
        outcomes = await asyncio.gather(*steps, store.run(fails), return_exceptions=True)
        assert isinstance(outcomes[-1], ValueError)
        await store.commit_step(session(50))  # after the listener raised
    finally:
        await store.close()
    # every durable job is in exactly one reported group (the failed one in none), and
    # grouping happened
    assert sum(jobs for _, jobs in reports) == 51
    assert len(reports) < 51
    assert all(seconds > 0 for seconds, _ in reports)
    conn = sqlite3.connect(tmp_path / "collector.db")
    assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 51
