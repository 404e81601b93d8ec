"""The sqlite sink: the sink contract, its table, WAL mode, upserts and its options."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.sinks import DeliveryError
from collector.sinks.sqlite import SqliteSink, from_config

from .contract import SinkContract, as_replay, closed, make_submission, started

DB = "data/results.db"


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


class TestSqliteContract(SinkContract):
    """The sqlite sink keeps the sink contract."""

    def make_sink(self, env: Path) -> SqliteSink:
        return from_config(name="db", options={"path": DB, "table": "calls"}, base_dir=env)

    async def read_back(self, env: Path) -> list[dict[str, Any]]:
        path = env / DB
        if not path.exists():
            return []
        return [orjson.loads(doc) for (doc,) in rows(path, "SELECT submission FROM calls")]


@pytest.mark.anyio
async def test_table_created_at_start_with_columns_in_wal_mode(tmp_path: Path) -> None:
    """start() creates the file and table (one row per submission, JSON columns) in WAL mode."""
    sink = await started(from_config(name="s", options={}, base_dir=tmp_path))
    try:
        path = tmp_path / "results.db"
        assert path.exists()
        columns = {
            name: (kind, pk)
            for _, name, kind, _, _, pk in rows(path, "PRAGMA table_info(submissions)")
        }
        assert columns["submission_id"] == ("TEXT", 1)
        assert columns["data"][0] == "JSON" and columns["submission"][0] == "JSON"
        assert {"form", "form_version", "status", "started_at", "ended_at"} <= set(columns)
        assert rows(path, "PRAGMA journal_mode") == [("wal",)]
    finally:
        await closed(sink)


@pytest.mark.anyio
async def test_redelivery_upserts_the_row(tmp_path: Path) -> None:
    """A changed submission with the same id replaces the row's values; still one row."""
    sink = await started(from_config(name="s", options={}, base_dir=tmp_path))
    try:
        first = make_submission("same-id", status="incomplete", data={"name": "Ada"})
        await sink.deliver(first)
        await sink.deliver(make_submission("same-id", status="completed", data={"name": "Ada L"}))
    finally:
        await closed(sink)
    got = rows(
        tmp_path / "results.db",
        "SELECT submission_id, form, form_version, status, json_extract(data, '$.name'),"
        " started_at, ended_at FROM submissions",
    )
    assert got == [
        ("same-id", "contact", "1", "completed", "Ada L", first["started_at"], first["ended_at"])
    ]


@pytest.mark.anyio
async def test_replay_markers_are_not_stored(tmp_path: Path) -> None:
    """A replay's `replay`/`delivery_key` describe the delivery and are left out of the row."""
    sink = await started(from_config(name="s", options={}, base_dir=tmp_path))
    try:
        submission = make_submission()
        await sink.deliver(as_replay(submission))
    finally:
        await closed(sink)
    [(doc,)] = rows(tmp_path / "results.db", "SELECT submission FROM submissions")
    assert orjson.loads(doc) == submission


@pytest.mark.anyio
async def test_deliver_without_start_opens_lazily(tmp_path: Path) -> None:
    """A sink that was never started still delivers (it opens the database on first use)."""
    sink = from_config(name="s", options={"path": str(tmp_path / "abs.db")}, base_dir=Path("/nope"))
    try:
        await sink.deliver(make_submission("lazy"))
    finally:
        await closed(sink)
    assert rows(tmp_path / "abs.db", "SELECT submission_id FROM submissions") == [("lazy",)]


@pytest.mark.anyio
async def test_unserialisable_submission_is_not_retried(tmp_path: Path) -> None:
    """A submission that cannot become JSON fails for good, not with endless retries."""
    sink = await started(from_config(name="s", options={}, base_dir=tmp_path))
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.deliver(make_submission(data={"when": object()}))
        assert caught.value.retryable is False
    finally:
        await closed(sink)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"table": "drop table x;"}, "option 'table' must be a plain SQL identifier"),
        ({"table": "1abc"}, "option 'table' must be a plain SQL identifier"),
        ({"table": "main.calls"}, "option 'table' must be a plain SQL identifier"),
        ({"path": ""}, "option 'path' must be a non-empty string"),
        ({"path": 3}, "option 'path' must be a non-empty string"),
        ({"tabel": "x"}, "unknown option.*tabel"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    """A bad table name, path or unknown option is a ValueError naming the option."""
    with pytest.raises(ValueError, match=message):
        from_config(name="s", options=options, base_dir=tmp_path)
