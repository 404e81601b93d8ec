"""The delivery worker on its own, over the real SQLite store and real sinks.

Time is the worker's Clock, moved by the test: a retry is due when the clock says so, and
the test wakes the worker with kick() instead of sleeping through a backoff. Every poll
the worker makes is noted (`Polls`), so a test can tell "polled and found nothing due"
from "has not looked yet".
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.adapters.store.sqlite import SqliteStore
from collector.sinks import DeliveryError
from collector.sinks.jsonl import JsonlSink
from collector.sinks.webhook import WebhookSink
from collector.workers.delivery import DeliveryWorker, RetryPolicy
from tests.harness import eventually, serve
from tests.sinks.contract import make_submission

from .conftest import T0, Clock
from .deliveries import (
    POLICY,
    SECRET,
    Gate,
    Polls,
    Receiver,
    Recorder,
    rows_of,
    running,
    settled,
    submit,
    window,
)

pytestmark = pytest.mark.anyio


# -- delivered once per sink -----------------------------------------------------------


async def test_each_submission_is_delivered_once_to_each_of_its_sinks(
    store: SqliteStore, clock: Clock, tmp_path: Path
) -> None:
    jsonl = JsonlSink(tmp_path / "results.jsonl")
    await jsonl.start()
    python = Recorder()
    await submit(store, "sub-1", ["jsonl", "python"])
    await submit(store, "sub-2", ["python"])  # a form that picked one sink
    async with running(store, {"jsonl": jsonl, "python": python}, clock) as run:
        await settled(store, "sub-1", "jsonl", state="delivered")
        await settled(store, "sub-1", "python", state="delivered")
        await settled(store, "sub-2", "python", state="delivered")
        clock.advance(3600)
        assert await run.poll_now() == ([], None)  # nothing is due again, ever
        await submit(store, "sub-3", ["jsonl", "python"], at=clock.now)
        run.worker.kick()
        await settled(store, "sub-3", "python", state="delivered")
        await settled(store, "sub-3", "jsonl", state="delivered")
    assert sorted(python.ids()) == ["sub-1", "sub-2", "sub-3"]
    lines = (tmp_path / "results.jsonl").read_bytes().splitlines()
    assert sorted(orjson.loads(line)["submission_id"] for line in lines) == ["sub-1", "sub-3"]
    assert python.calls[0] == make_submission("sub-1")  # the body as stored, unchanged
    for sid in ("sub-1", "sub-3"):
        for row in (await rows_of(store, sid)).values():
            assert (row.attempts, row.last_error) == (1, None)
    first = await rows_of(store, "sub-1")
    assert first["python"].delivered_at == T0  # the worker's clock, not the wall's
    assert sorted(run.outcomes) == sorted(
        [
            ("jsonl", "delivered", "sub-1"),
            ("python", "delivered", "sub-1"),
            ("python", "delivered", "sub-2"),
            ("jsonl", "delivered", "sub-3"),
            ("python", "delivered", "sub-3"),
        ]
    )


async def test_a_replay_carries_its_own_key_and_the_original_is_not_sent_again(
    store: SqliteStore, clock: Clock
) -> None:
    python = Recorder()
    await submit(store, "sub-1", ["python"])
    async with running(store, {"python": python}, clock) as run:
        await settled(store, "sub-1", "python", state="delivered")
        replay_id = await store.replay("sub-1", "python", "replay-key-1", clock.now)
        run.worker.kick()

        async def replayed() -> bool:
            rows = await store.deliveries_for("sub-1")
            return [r.state for r in rows] == ["delivered", "delivered"]

        await eventually(replayed)
    assert len(python.calls) == 2
    original, again = python.calls
    assert "replay" not in original and "delivery_key" not in original
    assert again == {**make_submission("sub-1"), "replay": True, "delivery_key": "replay-key-1"}
    rows = await store.deliveries_for("sub-1")
    assert [(r.id == replay_id, r.replay, r.key) for r in rows] == [
        (False, False, "sub-1"),
        (True, True, "replay-key-1"),
    ]


# -- failures: backoff, dead letters ---------------------------------------------------


async def test_a_failing_sink_is_retried_on_the_backoff_schedule_until_it_takes_it(
    store: SqliteStore, clock: Clock
) -> None:
    """Each failure is recorded with its error and the next attempt's time, inside the
    attempt's backoff window; the retry goes only when the clock reaches that time."""
    flaky = Recorder(
        RuntimeError("receiver down (1)"),
        DeliveryError("receiver busy (2)"),  # retryable by default
        ConnectionResetError("reset (3)"),
    )
    await submit(store, "sub-1", ["flaky"])
    async with running(store, {"flaky": flaky}, clock) as run:
        errors = [
            "RuntimeError: receiver down (1)",
            "receiver busy (2)",
            "ConnectionResetError: reset (3)",
        ]
        for attempt, error in enumerate(errors, start=1):
            row = await settled(store, "sub-1", "flaky", attempts=attempt)
            assert (row.state, row.last_error) == ("pending", error)
            low, high = window(POLICY, attempt)
            assert clock.now + low <= row.next_at <= clock.now + high
            clock.now = row.next_at - 0.001  # not yet due: the poll hands out nothing
            assert await run.poll_now() == ([], row.next_at)
            assert len(flaky.calls) == attempt
            clock.now = row.next_at  # due: the next attempt goes
            due, _ = await run.poll_now()
            assert due == [row.id]
        row = await settled(store, "sub-1", "flaky", state="delivered")
    assert (row.attempts, row.last_error, row.delivered_at) == (4, None, clock.now)
    assert len(flaky.calls) == 4
    assert [o for _, o, _ in run.outcomes] == ["retried", "retried", "retried", "delivered"]


async def test_a_non_retryable_failure_is_dead_at_once_and_other_sinks_still_deliver(
    store: SqliteStore, clock: Clock
) -> None:
    refusing = Recorder(DeliveryError("HTTP 400: unknown field 'age'", retryable=False))
    fine = Recorder()
    await submit(store, "sub-1", ["refusing", "fine"])
    async with running(store, {"refusing": refusing, "fine": fine}, clock) as run:
        dead = await settled(store, "sub-1", "refusing", state="dead")
        await settled(store, "sub-1", "fine", state="delivered")
        clock.advance(POLICY.cap_seconds * 100)
        assert await run.poll_now() == ([], None)  # a dead delivery is never due again
    assert (dead.attempts, dead.last_error, dead.delivered_at) == (
        1,
        "HTTP 400: unknown field 'age'",
        None,
    )
    assert len(refusing.calls) == 1 and fine.ids() == ["sub-1"]
    assert sorted(run.outcomes) == [("fine", "delivered", "sub-1"), ("refusing", "dead", "sub-1")]


async def test_past_max_attempts_a_delivery_is_dead_with_its_last_error(
    store: SqliteStore, clock: Clock
) -> None:
    policy = RetryPolicy(base_seconds=10.0, cap_seconds=40.0, max_attempts=3)
    down = Recorder(*(OSError(f"refused ({n})") for n in range(1, 10)))
    await submit(store, "sub-1", ["down"])
    async with running(store, {"down": down}, clock, policy) as run:
        for attempt in (1, 2):
            row = await settled(store, "sub-1", "down", attempts=attempt, state="pending")
            clock.now = row.next_at
            run.worker.kick()
        row = await settled(store, "sub-1", "down", state="dead")
        clock.advance(3600)
        assert await run.poll_now() == ([], None)
    assert (row.attempts, row.last_error) == (3, "OSError: refused (3)")
    assert len(down.calls) == 3
    assert [o for _, o, _ in run.outcomes] == ["retried", "retried", "dead"]


async def test_past_the_age_budget_the_next_failure_is_dead(
    store: SqliteStore, clock: Clock
) -> None:
    """A delivery older than max_age_seconds is not retried again, whatever its attempts."""
    policy = RetryPolicy(base_seconds=10.0, cap_seconds=40.0, max_attempts=100, max_age_seconds=60)
    down = Recorder(*(OSError(f"refused ({n})") for n in range(1, 10)))
    await submit(store, "sub-1", ["down"])
    async with running(store, {"down": down}, clock, policy) as run:
        row = await settled(store, "sub-1", "down", attempts=1, state="pending")
        clock.now = T0 + 61  # past the age budget, and the retry is due
        run.worker.kick()
        row = await settled(store, "sub-1", "down", state="dead")
    assert (row.attempts, row.last_error) == (2, "OSError: refused (2)")
    assert [o for _, o, _ in run.outcomes] == ["retried", "dead"]


async def test_a_delivery_to_a_sink_no_longer_configured_is_retried_then_dead(
    store: SqliteStore, clock: Clock
) -> None:
    policy = RetryPolicy(base_seconds=10.0, cap_seconds=40.0, max_attempts=2)
    await submit(store, "sub-1", ["removed"])
    async with running(store, {}, clock, policy) as run:
        row = await settled(store, "sub-1", "removed", attempts=1)
        assert (row.state, row.last_error) == ("pending", "no sink named 'removed' is configured")
        clock.now = row.next_at
        run.worker.kick()
        row = await settled(store, "sub-1", "removed", state="dead")
    assert row.attempts == 2
    assert [o for _, o, _ in run.outcomes] == ["retried", "dead"]


async def test_a_webhook_sink_is_retried_on_503_with_the_same_webhook_id_and_dead_on_400(
    store: SqliteStore, clock: Clock
) -> None:
    receiver = Receiver(statuses=[503, 204, 400])
    async with serve(receiver.app()) as url:
        sink = WebhookSink(f"{url}/hook", SECRET, timeout_seconds=5)
        await sink.start()
        try:
            await submit(store, "sub-1", ["crm"])
            async with running(store, {"crm": sink}, clock) as run:
                row = await settled(store, "sub-1", "crm", attempts=1)
                assert row.state == "pending"
                assert row.last_error is not None and "HTTP 503" in row.last_error
                clock.now = row.next_at
                run.worker.kick()
                await settled(store, "sub-1", "crm", state="delivered", attempts=2)
                await submit(store, "sub-2", ["crm"], at=clock.now)
                run.worker.kick()
                dead = await settled(store, "sub-2", "crm", state="dead")
        finally:
            await sink.close()
    assert dead.attempts == 1 and dead.last_error is not None and "HTTP 400" in dead.last_error
    assert [wid for wid, _ in receiver.seen] == ["sub-1", "sub-1", "sub-2"]
    assert receiver.seen[1][1] == make_submission("sub-1")


# -- restart -----------------------------------------------------------------------------


async def test_a_new_worker_on_the_same_store_file_resumes_pending_and_skips_delivered(
    db: Path, clock: Clock, tmp_path: Path
) -> None:
    store = SqliteStore(db)
    await store.open()
    try:
        await submit(store, "sub-1", ["jsonl", "python"])
        await submit(store, "sub-2", ["jsonl", "python"])
        jsonl = JsonlSink(tmp_path / "results.jsonl")
        await jsonl.start()
        python = Recorder(RuntimeError("down"))  # the first delivery it gets fails
        async with running(store, {"jsonl": jsonl, "python": python}, clock):
            for sid in ("sub-1", "sub-2"):
                await settled(store, sid, "jsonl", state="delivered")

            async def one_each() -> bool:
                rows = [(await rows_of(store, sid))["python"] for sid in ("sub-1", "sub-2")]
                return sorted(r.state for r in rows) == ["delivered", "pending"] and all(
                    r.attempts == 1 for r in rows
                )

            await eventually(one_each)
        states = {sid: (await rows_of(store, sid))["python"] for sid in ("sub-1", "sub-2")}
        [failed] = [sid for sid, row in states.items() if row.state == "pending"]
        pending_row = states[failed]
        assert pending_row.last_error == "RuntimeError: down"
    finally:
        await store.close()

    # the restart: a new store object on the same file, new sinks, a new worker
    store = SqliteStore(db)
    await store.open()
    try:
        jsonl = JsonlSink(tmp_path / "results.jsonl")
        await jsonl.start()
        after = Recorder()
        clock.now = pending_row.next_at
        async with running(store, {"jsonl": jsonl, "python": after}, clock) as run:
            row = await settled(store, failed, "python", state="delivered")
            clock.advance(3600)
            assert await run.poll_now() == ([], None)
        assert row.attempts == 2
        assert after.ids() == [failed]  # the delivered one is not sent again
        assert run.outcomes == [("python", "delivered", failed)]
    finally:
        await store.close()
    lines = (tmp_path / "results.jsonl").read_bytes().splitlines()
    assert sorted(orjson.loads(line)["submission_id"] for line in lines) == ["sub-1", "sub-2"]


# -- concurrency, and closing ----------------------------------------------------------


async def test_a_slow_sink_does_not_hold_up_another_sinks_deliveries(
    store: SqliteStore, clock: Clock
) -> None:
    slow, fast = Gate(), Recorder()
    for sid in ("sub-1", "sub-2", "sub-3"):
        await submit(store, sid, ["slow", "fast"])
    async with running(store, {"slow": slow, "fast": fast}, clock) as run:
        for sid in ("sub-1", "sub-2", "sub-3"):
            await settled(store, sid, "fast", state="delivered")
        pending = await store.list_deliveries(("pending",))
        assert sorted((r.sink, r.attempts) for r in pending) == [("slow", 0)] * 3
        assert sorted(slow.calls) == ["sub-1", "sub-2", "sub-3"]  # all under way at once
        # polls meanwhile hand out the slow rows again (still pending and due): none is
        # started a second time while its delivery is under way
        due, _ = await run.poll_now()
        assert len(due) == 3
        assert len(slow.calls) == 3
        slow.open.set()
        for sid in ("sub-1", "sub-2", "sub-3"):
            await settled(store, sid, "slow", state="delivered", attempts=1)
    assert sorted(slow.calls) == ["sub-1", "sub-2", "sub-3"]
    assert sorted(fast.ids()) == ["sub-1", "sub-2", "sub-3"]


@pytest.mark.parametrize("bound", [1, 2])
async def test_deliveries_to_one_sink_run_at_most_per_sink_concurrency_at_once(
    store: SqliteStore, clock: Clock, bound: int
) -> None:
    policy = RetryPolicy(per_sink_concurrency=bound)
    gate = Gate()
    sids = [f"sub-{n}" for n in range(4)]
    for sid in sids:
        await submit(store, sid, ["gate"])
    async with running(store, {"gate": gate}, clock, policy) as run:
        await eventually(lambda: _now(gate.inside == bound))
        await run.poll_now()  # the worker has looked again: still no more than the bound
        assert gate.inside == bound and len(gate.calls) == bound
        gate.open.set()
        for sid in sids:
            await settled(store, sid, "gate", state="delivered", attempts=1)
    assert gate.most_inside == bound
    assert sorted(gate.calls) == sids


async def test_close_waits_for_a_delivery_under_way(store: SqliteStore, clock: Clock) -> None:
    gate = Gate()
    await submit(store, "sub-1", ["gate"])
    polls = Polls(store)
    worker = DeliveryWorker(polls, {"gate": gate}, POLICY, clock=clock)
    worker.start()
    await eventually(lambda: _now(gate.inside == 1))
    closing = asyncio.create_task(worker.close(timeout=30))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not closing.done()  # held by the delivery in flight
    polled = len(polls.log)
    gate.open.set()
    await closing
    row = await settled(store, "sub-1", "gate", state="delivered")  # recorded before close returned
    assert row.attempts == 1
    worker.kick()
    await asyncio.sleep(0.05)
    assert len(polls.log) == polled  # a closed worker polls no more


async def test_close_gives_up_waiting_after_its_timeout_and_the_delivery_stays_pending(
    db: Path, clock: Clock
) -> None:
    """A sink that hangs past close()'s timeout: close() returns, the attempt is left to
    finish on its own (it is not cancelled), and if the store is gone by then nothing is
    recorded, so the delivery is still pending at the next start and goes again (the
    reason a sink must take the same submission twice)."""
    store = SqliteStore(db)
    await store.open()
    gate = Gate()
    await submit(store, "sub-1", ["gate"])
    worker = DeliveryWorker(store, {"gate": gate}, POLICY, clock=clock)
    worker.start()
    await eventually(lambda: _now(gate.inside == 1))
    await worker.close(timeout=0.05)
    row = (await rows_of(store, "sub-1"))["gate"]
    assert (row.state, row.attempts) == ("pending", 0)
    await store.close()  # as Runtime.stop() does after the workers
    gate.open.set()  # the abandoned attempt ends now, and cannot record anything
    await eventually(lambda: _now(gate.inside == 0))
    for _ in range(5):
        await asyncio.sleep(0)
    store = SqliteStore(db)
    await store.open()
    try:
        row = (await rows_of(store, "sub-1"))["gate"]
        assert (row.state, row.attempts) == ("pending", 0)
        after = Recorder()
        async with running(store, {"gate": after}, clock):
            await settled(store, "sub-1", "gate", state="delivered", attempts=1)
        assert after.ids() == ["sub-1"]
        assert gate.calls == ["sub-1"]
    finally:
        await store.close()


async def _now(value: Any) -> Any:
    await asyncio.sleep(0)
    return value
