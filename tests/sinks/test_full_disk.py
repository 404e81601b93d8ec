"""File sinks on a real full disk (a small tmpfs): whole writes or none, then a clean retry.

The tmpfs tests need root (CI runs as root). Elsewhere they skip, saying why; under
CI=true a skip is a failure, so they cannot silently stop running there.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.adapters.store.sqlite import SqliteStore
from collector.core.session.model import CallInfo, Session, State
from collector.sinks import DeliveryError
from collector.sinks.jsonl import JsonlSink, write_all
from collector.sinks.sqlite import SqliteSink
from collector.workers.delivery import DeliveryWorker, RetryPolicy
from tests.tmpfs import fill, free_bytes, mounted_tmpfs

from .contract import make_submission, started

DISK_SIZE = "256k"


@pytest.fixture(name="small_disk")
def _small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs mounted for the test, unmounted after it."""
    with mounted_tmpfs(tmp_path, DISK_SIZE) as disk:
        yield disk


def big(submission_id: str) -> dict[str, Any]:
    """A submission of about 12 KB, bigger than the space left on the full disk."""
    return make_submission(submission_id, transcript=[{"role": "user", "content": "x" * 12_000}])


def ids_in(path: Path) -> list[str]:
    """Every line's submission_id; fails if any line is not whole JSON."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [orjson.loads(line)["submission_id"] for line in data.splitlines()]


@pytest.mark.anyio
async def test_jsonl_enospc_mid_record_fails_whole_group_leaves_no_torn_line(
    small_disk: Path,
) -> None:
    """ENOSPC in the middle of a group write: every delivery in it raises, the file is
    exactly as before (no fragment), and once space is back each lands exactly once."""
    path = small_disk / "results.jsonl"
    sink = await started(JsonlSink(path))
    first = [make_submission(f"before-{i}") for i in range(3)]
    for sub in first:
        await sink.deliver(sub)
    before = path.read_bytes()

    filler = fill(small_disk, leave=4096)
    group = [make_submission("small-fits"), big("big-does-not-fit"), make_submission("after")]
    size = len(b"\n".join(orjson.dumps(s) for s in group)) + 1
    # some of the group fits and the rest does not: the kernel takes part of it, then ENOSPC
    assert 0 < free_bytes(small_disk) < size

    for _attempt in range(2):  # the worker's retries while the disk is still full
        async with sink._lock:  # hold the writer so the three go in one group write
            tasks = [asyncio.create_task(sink.deliver(s)) for s in group]
            await asyncio.sleep(0)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, OSError) and r.errno == errno.ENOSPC for r in results), results
        assert path.read_bytes() == before  # the group's bytes were all taken back
        assert ids_in(path) == [s["submission_id"] for s in first]

    filler.unlink()
    for sub in first + group + group:  # the retries, and replays of what had landed
        await sink.deliver(sub)
    expected = [s["submission_id"] for s in first + group]
    assert ids_in(path) == expected

    # a restart finds nothing torn and still dedupes
    again = await started(JsonlSink(path))
    for sub in first + group:
        await again.deliver(sub)
    assert ids_in(path) == expected
    assert not (small_disk / "results.jsonl.torn").exists()


def session(n: int) -> Session:
    now = time.time()  # the delivery's age is counted from here
    return Session(
        id=f"s{n}",
        form="contact",
        call=CallInfo(call_control_id=f"v3:c{n}"),
        started_at=now,
        updated_at=now,
        state=State.COMPLETED,
    )


async def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.anyio
async def test_delivery_worker_records_a_full_disk_as_a_retry_then_delivers_once(
    small_disk: Path, tmp_path: Path
) -> None:
    """Through the real delivery worker and store: while the sink's disk is full the
    delivery stays pending with the ENOSPC error kept; with space back it is delivered."""
    path = small_disk / "results.jsonl"
    sink = JsonlSink(path)
    await sink.start()
    store = SqliteStore(tmp_path / "store" / "collector.db")  # the store is not on the tmpfs
    await store.open()
    worker = DeliveryWorker(
        store,
        {"jsonl": sink},
        RetryPolicy(base_seconds=0.02, cap_seconds=0.05, max_attempts=1000),
    )
    filler = fill(small_disk, leave=4096)
    subs = [big(f"big-{i}") for i in range(3)]
    for i, sub in enumerate(subs):
        await store.commit_step(session(i), submission=sub, sinks=["jsonl"])
    worker.start()
    try:

        async def failed_twice() -> bool:
            rows = [r for s in subs for r in await store.deliveries_for(s["submission_id"])]
            return all(r.attempts >= 2 for r in rows)

        await wait_for(failed_twice)
        for sub in subs:
            [row] = await store.deliveries_for(sub["submission_id"])
            assert row.state == "pending" and "No space left on device" in (row.last_error or "")
        assert ids_in(path) == []

        filler.unlink()

        async def all_delivered() -> bool:
            rows = [r for s in subs for r in await store.deliveries_for(s["submission_id"])]
            return all(r.state == "delivered" for r in rows)

        await wait_for(all_delivered)
    finally:
        await worker.close()
        await store.close()
    assert sorted(ids_in(path)) == sorted(s["submission_id"] for s in subs)


@pytest.mark.anyio
async def test_sqlite_sink_disk_full_is_a_failed_delivery_not_a_success(small_disk: Path) -> None:
    """SQLITE_FULL surfaces as a retryable DeliveryError and writes no row; a retry with
    space back lands the row once."""
    path = small_disk / "results.db"
    sink = await started(SqliteSink(path))
    await sink.deliver(make_submission("before"))
    filler = fill(small_disk)
    with pytest.raises(DeliveryError, match="full") as failed:
        await sink.deliver(big("on-a-full-disk"))
    assert failed.value.retryable
    with pytest.raises(DeliveryError, match="full"):  # a retry while still full fails too
        await sink.deliver(big("on-a-full-disk"))

    conn = sqlite3.connect(path)
    try:
        assert [r[0] for r in conn.execute("SELECT submission_id FROM submissions")] == ["before"]
    finally:
        conn.close()

    filler.unlink()
    await sink.deliver(big("on-a-full-disk"))
    await sink.deliver(big("on-a-full-disk"))
    await sink.close()  # type: ignore[attr-defined]
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT submission_id FROM submissions ORDER BY submission_id")
        assert [r[0] for r in rows] == ["before", "on-a-full-disk"]
    finally:
        conn.close()


def test_write_all_continues_after_real_short_writes() -> None:
    """A real short write: a blocking pipe whose reader is slow, with SIGALRM firing every
    few milliseconds, so write(2) returns after only part of the buffer (the kernel returns
    what it took when a signal interrupts a pipe write). The first, bare os.write shows the
    short write happens; write_all then delivers every byte in the same conditions."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    data = bytes(range(256)) * 4096  # 1 MiB, far more than a pipe buffer
    r, w = os.pipe()
    received = bytearray()
    may_read = threading.Event()

    def reader() -> None:
        may_read.wait()
        while chunk := os.read(r, 4096):
            received.extend(chunk)
            time.sleep(0.0002)

    thread = threading.Thread(target=reader)
    thread.start()
    old = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 0.01, 0.005)
    try:
        short = os.write(w, data)  # nobody reads yet: the pipe fills, the signal cuts it short
        assert 0 < short < len(data)
        may_read.set()
        write_all(w, data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
        may_read.set()
        os.close(w)
        thread.join(10)
        os.close(r)
    assert bytes(received) == data[:short] + data


@pytest.mark.anyio
async def test_store_disk_full_fails_every_job_of_the_group_with_the_real_error(
    small_disk: Path,
) -> None:
    """SQLITE_FULL in the store's writer (a statement big enough to spill to the WAL):
    SQLite rolls back the whole group transaction, so every job in it fails, with the
    disk-full error itself (not "no such savepoint"), none is committed, and the writer
    goes on once there is space."""
    store = SqliteStore(small_disk / "collector.db")
    await store.open()
    try:
        await store.run(lambda conn: conn.execute("CREATE TABLE junk (x)"))
        filler = fill(small_disk)

        def small(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO junk VALUES (1)")

        def huge(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO junk VALUES (?)", (b"y" * 5_000_000,))

        results = await asyncio.wait_for(
            asyncio.gather(
                store.run(small), store.run(huge), store.run(small), return_exceptions=True
            ),
            10,
        )
        assert all(isinstance(r, sqlite3.OperationalError) and "full" in str(r) for r in results), (
            results
        )

        filler.unlink()
        count = await store.run(lambda conn: conn.execute("SELECT COUNT(*) FROM junk").fetchone())
        assert count == (0,)
        await store.run(small)
        count = await store.run(lambda conn: conn.execute("SELECT COUNT(*) FROM junk").fetchone())
        assert count == (1,)
    finally:
        await store.close()


@pytest.mark.anyio
async def test_jsonl_repairs_before_writing_when_a_failed_write_could_not_be_undone(
    tmp_path: Path,
) -> None:
    """If truncating a failed write back also fails (EIO; not something a test can cause
    on a real file), the sink marks itself for repair and the next write first moves the
    fragment to `.torn`. This puts the file and the sink in exactly that state by hand."""
    path = tmp_path / "results.jsonl"
    sink = await started(JsonlSink(path))
    await sink.deliver(make_submission("landed"))
    with path.open("ab") as f:  # what the failed, un-undone write left behind
        f.write(orjson.dumps(make_submission("failed"))[:90])
    sink._needs_repair = True
    await sink.deliver(make_submission("failed"))  # the worker's retry
    await sink.deliver(make_submission("next"))
    assert ids_in(path) == ["landed", "failed", "next"]
    assert (tmp_path / "results.jsonl.torn").read_bytes().count(b"\n") == 1
