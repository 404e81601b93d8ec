"""The jsonl sink: the sink contract, and crash safety on a file torn by a crash."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog.testing

from collector.sinks.jsonl import JsonlSink, from_config

from .contract import SinkContract, make_submission, started


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


class TestJsonlContract(SinkContract):
    """The jsonl sink keeps the sink contract."""

    def make_sink(self, env: Path) -> JsonlSink:
        return from_config(name="jsonl", options={"path": "out/results.jsonl"}, base_dir=env)

    async def read_back(self, env: Path) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in lines_of(env / "out" / "results.jsonl")]


@pytest.mark.anyio
async def test_torn_last_line_and_existing_id_give_no_duplicate(tmp_path: Path) -> None:
    """A torn last line is cut off; a redelivered id writes nothing; the file stays valid."""
    path = tmp_path / "results.jsonl"
    done = make_submission("already-there")
    torn = make_submission("torn-by-crash")
    path.write_bytes(orjson.dumps(done) + b"\n" + orjson.dumps(torn)[:40])
    sink = await started(JsonlSink(path))
    await sink.deliver(done)  # redelivered by the outbox: already in the file
    await sink.deliver(torn)  # never confirmed: the outbox delivers it again
    fresh = make_submission("after-the-crash")
    await sink.deliver(fresh)

    data = path.read_bytes()
    assert data.endswith(b"\n")
    parsed = [orjson.loads(line) for line in data.splitlines()]  # every line is valid JSON
    assert [p["submission_id"] for p in parsed] == [
        "already-there",
        "torn-by-crash",
        "after-the-crash",
    ]


@pytest.mark.anyio
async def test_last_line_complete_but_unterminated_counts_as_written(tmp_path: Path) -> None:
    """A last record whose newline was lost is still known: redelivering it adds no line."""
    path = tmp_path / "results.jsonl"
    done = make_submission("no-newline")
    path.write_bytes(orjson.dumps(done))
    sink = await started(JsonlSink(path))
    await sink.deliver(done)
    await sink.deliver(make_submission("next"))
    assert [orjson.loads(line)["submission_id"] for line in lines_of(path)] == [
        "no-newline",
        "next",
    ]


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    """An option jsonl does not know is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"unknown option.*colour"):
        from_config(name="j", options={"path": "x.jsonl", "colour": "red"}, base_dir=tmp_path)


@pytest.mark.anyio
async def test_concurrent_deliveries_land_once_each_in_whole_lines(tmp_path: Path) -> None:
    """Deliveries racing each other (the same id among them) share writes, never lines."""
    path = tmp_path / "results.jsonl"
    sink = await started(JsonlSink(path))
    subs = [make_submission(f"s-{i}") for i in range(60)]
    await asyncio.gather(*(sink.deliver(s) for s in subs + subs[:10]))
    ids = [orjson.loads(line)["submission_id"] for line in lines_of(path)]
    assert sorted(ids) == sorted(s["submission_id"] for s in subs)


@pytest.mark.anyio
async def test_a_failed_write_fails_every_delivery_waiting_on_it(tmp_path: Path) -> None:
    """If the file cannot be written, each delivery in the group raises (and is retried)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    sink = JsonlSink(blocker / "results.jsonl")
    results = await asyncio.gather(
        *(sink.deliver(make_submission(f"s-{i}")) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, OSError) for r in results)


@pytest.mark.anyio
async def test_torn_lines_anywhere_are_quarantined_and_whole_records_kept(tmp_path: Path) -> None:
    """Start-up repair finds torn records in the middle of the file, not only at its end:
    each goes to `<path>.torn` (one log line for the repair), every whole record stays,
    including one an older version appended onto a fragment, and nothing is duplicated."""
    path = tmp_path / "results.jsonl"
    a, b, c, d = (make_submission(s) for s in ("a", "b", "c", "d"))
    torn_1 = orjson.dumps(make_submission("torn-1"))[:70]
    torn_2 = orjson.dumps(make_submission("torn-2"))[:150]
    path.write_bytes(
        orjson.dumps(a)
        + b"\n"
        + torn_1  # a short write on a full disk...
        + b"\n"  # ...the next line started cleanly
        + orjson.dumps(b)
        + b"\n"
        + torn_2  # a short write the next append ran onto: `c` is whole after it
        + orjson.dumps(c)
        + b"\n"
        + orjson.dumps(d)  # the last record lost only its newline
    )
    with structlog.testing.capture_logs() as logs:
        sink = await started(JsonlSink(path))
    assert [e["event"] for e in logs] == ["jsonl_torn_lines_quarantined"]
    assert logs[0]["torn_lines"] == 2 and logs[0]["records_salvaged"] == 1

    assert [orjson.loads(line)["submission_id"] for line in lines_of(path)] == ["a", "b", "c", "d"]
    assert path.read_bytes().endswith(b"\n")
    assert (tmp_path / "results.jsonl.torn").read_bytes() == torn_1 + b"\n" + torn_2 + b"\n"

    for sub in (a, b, c, d):  # redelivered by the outbox: already there, nothing written
        await sink.deliver(sub)
    await sink.deliver(make_submission("torn-1"))  # never confirmed: delivered again, once
    await sink.deliver(make_submission("torn-2"))
    assert [orjson.loads(line)["submission_id"] for line in lines_of(path)] == [
        "a",
        "b",
        "c",
        "d",
        "torn-1",
        "torn-2",
    ]

    # the next start has nothing to repair and says nothing
    with structlog.testing.capture_logs() as logs:
        again = await started(JsonlSink(path))
    assert logs == []
    await again.deliver(make_submission("torn-1"))
    assert len(lines_of(path)) == 6


@pytest.mark.anyio
async def test_a_torn_last_line_is_quarantined_and_cut_off_in_place(tmp_path: Path) -> None:
    """The usual crash (only the end torn) is repaired by truncating, no copy of the file."""
    path = tmp_path / "results.jsonl"
    whole = orjson.dumps(make_submission("whole")) + b"\n"
    path.write_bytes(whole + b'{"submission_id": "cut')
    inode = path.stat().st_ino
    await started(JsonlSink(path))
    assert path.read_bytes() == whole
    assert path.stat().st_ino == inode
    assert (tmp_path / "results.jsonl.torn").read_bytes() == b'{"submission_id": "cut\n'
