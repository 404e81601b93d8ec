"""The contract every sink keeps, as a base class that each sink's test module subclasses.

A subclass provides `make_sink(env)` (a fresh, unstarted sink over the same storage each
time it is called) and `read_back(env)` (the records that storage holds, as submission
dicts); it may override the `env` fixture to set up that storage (a temp dir, a table, a
receiver). Every test is run against the real component.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from collector.sinks import Sink


def make_submission(submission_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """A submission shaped as DESIGN.md's "The submission" describes it."""
    sid = submission_id or str(uuid.uuid4())
    doc: dict[str, Any] = {
        "submission_id": sid,
        "form": "contact",
        "form_version": "1",
        "status": "completed",
        "data": {"name": "Ada Lovelace", "email": "ada@example.com", "age": 36},
        "errors": [],
        "fields": {
            "name": {"value": "Ada Lovelace", "source": "ai", "attempts": 1, "errors": []},
            "email": {
                "value": "ada@example.com",
                "source": "confirmed",
                "attempts": 2,
                "errors": [],
            },
            "age": {"value": 36, "source": "keypad", "attempts": 1, "errors": []},
        },
        "call": {
            "call_control_id": f"v3:{sid}",
            "call_session_id": f"session-{sid}",
            "from": "+13125550100",
            "to": "+13125550001",
            "direction": "incoming",
        },
        "attempts": 2,
        "started_at": "2025-01-02T03:04:05.000Z",
        "ended_at": "2025-01-02T03:06:07.000Z",
        "transcript": [
            {"role": "assistant", "content": "What is your name?"},
            {"role": "user", "content": "Ada Lovelace. Ünïcödé ✓"},
        ],
    }
    doc.update(changes)
    return doc


def as_replay(submission: dict[str, Any]) -> dict[str, Any]:
    """The submission as the outbox hands it over when an operator redelivers on purpose."""
    return {**submission, "replay": True, "delivery_key": str(uuid.uuid4())}


async def started(sink: Sink) -> Sink:
    start = getattr(sink, "start", None)
    if start is not None:
        await start()
    return sink


async def closed(sink: Sink) -> None:
    close = getattr(sink, "close", None)
    if close is not None:
        await close()


@pytest.mark.anyio
class SinkContract:
    """Delivered submissions read back; redelivery never duplicates; distinct ones don't merge."""

    # A replay carries a new delivery key; a sink that keys on it (webhook) shows a new record.
    replay_is_new_record: ClassVar[bool] = False

    @pytest.fixture
    def env(self, tmp_path: Any) -> Any:
        return tmp_path

    def make_sink(self, env: Any) -> Sink:
        raise NotImplementedError

    async def read_back(self, env: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    @pytest.fixture
    async def sink(self, env: Any) -> AsyncIterator[Sink]:
        sink = await started(self.make_sink(env))
        try:
            yield sink
        finally:
            await closed(sink)

    async def records_of(self, env: Any, submission_id: str) -> list[dict[str, Any]]:
        return [r for r in await self.read_back(env) if r["submission_id"] == submission_id]

    async def test_delivered_submission_reads_back(self, env: Any, sink: Sink) -> None:
        """A delivered submission can be read back whole from where the sink put it."""
        submission = make_submission()
        await sink.deliver(submission)
        assert await self.read_back(env) == [submission]

    async def test_same_submission_twice_leaves_one_record(self, env: Any, sink: Sink) -> None:
        """Delivering the same submission twice leaves exactly one record of it."""
        submission = make_submission()
        await sink.deliver(submission)
        await sink.deliver(submission)
        assert await self.records_of(env, submission["submission_id"]) == [submission]
        assert len(await self.read_back(env)) == 1

    async def test_two_submissions_give_two_records(self, env: Any, sink: Sink) -> None:
        """Two different submissions give two records, each with its own data."""
        first = make_submission()
        second = make_submission(data={"name": "Grace Hopper"}, status="incomplete")
        await sink.deliver(first)
        await sink.deliver(second)
        records = await self.read_back(env)
        assert sorted(records, key=lambda r: r["submission_id"]) == sorted(
            [first, second], key=lambda r: r["submission_id"]
        )

    async def test_redelivery_by_a_new_sink_instance_leaves_one_record(self, env: Any) -> None:
        """A submission redelivered after a restart (a fresh sink, same storage) is not doubled."""
        submission = make_submission()
        before = await started(self.make_sink(env))
        try:
            await before.deliver(submission)
        finally:
            await closed(before)
        after = await started(self.make_sink(env))
        try:
            await after.deliver(submission)
        finally:
            await closed(after)
        assert len(await self.records_of(env, submission["submission_id"])) == 1

    async def test_replay_of_a_delivered_submission(self, env: Any, sink: Sink) -> None:
        """An operator's replay upserts the same record (or, keyed on delivery, adds one)."""
        submission = make_submission()
        await sink.deliver(submission)
        await sink.deliver(as_replay(submission))
        records = await self.records_of(env, submission["submission_id"])
        assert len(records) == (2 if self.replay_is_new_record else 1)
        assert records[0]["data"] == submission["data"]
