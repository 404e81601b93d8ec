"""The postgres sink against the real server on 127.0.0.1:5432 (database `test`, trust auth).

Each test uses its own table (uuid suffix), dropped afterwards. Without a reachable server
the server-backed tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest

from collector.sinks import DeliveryError
from collector.sinks.postgres import PostgresSink, from_config
from tests.pg import HOST, PORT, connect_or_skip

from .contract import SinkContract, as_replay, closed, make_submission, started

DATABASE = "test"


@dataclass
class Pg:
    """A reachable server: its DSN, an admin connection, and this test's table name."""

    dsn: str
    conn: asyncpg.Connection
    table: str

    def sink(self, **options: Any) -> PostgresSink:
        return from_config(
            name="pg", options={"dsn": self.dsn, "table": self.table, **options}, base_dir=None
        )

    async def documents(self, table: str | None = None) -> list[dict[str, Any]]:
        name = table or f'"{self.table}"'
        exists = await self.conn.fetchval("SELECT to_regclass($1)", name)
        if exists is None:
            return []
        return [
            orjson.loads(r["submission"])
            for r in await self.conn.fetch(f"SELECT submission FROM {name} ORDER BY submission_id")
        ]


@pytest.fixture
async def pg() -> AsyncIterator[Pg]:
    dsn, conn = await connect_or_skip(DATABASE)
    table = f"sink_test_{uuid.uuid4().hex[:12]}"
    try:
        yield Pg(dsn, conn, table)
    finally:
        try:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        finally:
            await conn.close()


@pytest.mark.postgres
class TestPostgresContract(SinkContract):
    """The postgres sink keeps the sink contract."""

    @pytest.fixture
    def env(self, pg: Pg) -> Pg:
        return pg

    def make_sink(self, env: Pg) -> PostgresSink:
        return env.sink()

    async def read_back(self, env: Pg) -> list[dict[str, Any]]:
        return await env.documents()


@pytest.mark.postgres
@pytest.mark.anyio
async def test_table_is_created_with_jsonb_columns(pg: Pg) -> None:
    """start() creates the table: text primary key, JSONB data and submission, delivered_at."""
    sink = await started(pg.sink())
    try:
        columns = {
            r["column_name"]: r["data_type"]
            for r in await pg.conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = $1",
                pg.table,
            )
        }
        assert columns == {
            "submission_id": "text",
            "form": "text",
            "form_version": "text",
            "status": "text",
            "data": "jsonb",
            "submission": "jsonb",
            "delivered_at": "timestamp with time zone",
        }
        key = await pg.conn.fetchval(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = $1::regclass AND i.indisprimary",
            f'"{pg.table}"',
        )
        assert key == "submission_id"
    finally:
        await closed(sink)


@pytest.mark.postgres
@pytest.mark.anyio
async def test_redelivery_upserts_the_row(pg: Pg) -> None:
    """A changed submission with the same id updates the one row, queryable as JSONB."""
    sink = await started(pg.sink())
    try:
        await sink.deliver(make_submission("same", status="incomplete", data={"name": "Ada"}))
        first_at = await pg.conn.fetchval(f'SELECT delivered_at FROM "{pg.table}"')
        await sink.deliver(as_replay(make_submission("same", data={"name": "Ada L", "age": 36})))
    finally:
        await closed(sink)
    got = await pg.conn.fetch(
        f"SELECT submission_id, form, form_version, status, data->>'name' AS name,"
        f" (data->>'age')::int AS age, submission ? 'replay' AS has_replay, delivered_at"
        f' FROM "{pg.table}"'
    )
    assert len(got) == 1
    row = got[0]
    assert (row["submission_id"], row["form"], row["form_version"], row["status"]) == (
        "same",
        "contact",
        "1",
        "completed",
    )
    assert (row["name"], row["age"], row["has_replay"]) == ("Ada L", 36, False)
    assert row["delivered_at"] >= first_at


@pytest.mark.postgres
@pytest.mark.anyio
async def test_schema_qualified_table(pg: Pg) -> None:
    """`table = "schema.table"` creates the schema and table if missing and writes there."""
    schema = f"sink_test_schema_{uuid.uuid4().hex[:8]}"
    sink = await started(pg.sink(table=f"{schema}.{pg.table}"))
    try:
        submission = make_submission()
        await sink.deliver(submission)
        assert await pg.documents(f'"{schema}"."{pg.table}"') == [submission]
    finally:
        await closed(sink)
        await pg.conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.postgres
@pytest.mark.anyio
async def test_submission_the_database_refuses_is_not_retried(pg: Pg) -> None:
    """A submission PostgreSQL refuses (a NUL character in JSONB) fails for good, not forever."""
    sink = await started(pg.sink())
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.deliver(make_submission(data={"name": "nul\u0000byte"}))
        assert caught.value.retryable is False
    finally:
        await closed(sink)


@pytest.mark.anyio
async def test_unreachable_at_start_does_not_raise_and_deliver_is_retryable() -> None:
    """A server that is down at start: start() returns, deliver raises a retryable error."""
    sink = from_config(
        name="pg", options={"dsn": "postgresql://postgres:s3cret@127.0.0.1:1/test"}, base_dir=None
    )
    await sink.start()
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.deliver(make_submission())
        assert caught.value.retryable is True
        assert "s3cret" not in str(caught.value)
    finally:
        await sink.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@pytest.mark.postgres
@pytest.mark.anyio
async def test_down_at_start_then_up_delivers(pg: Pg) -> None:
    """A sink whose database came up after start-up opens its pool on the next delivery."""
    port = free_port()
    user = pg.dsn.split("//")[1].split("@")[0]
    sink = await started(PostgresSink(f"postgresql://{user}@{HOST}:{port}/{DATABASE}", pg.table))
    submission = make_submission()
    with pytest.raises(DeliveryError) as caught:
        await sink.deliver(submission)
    assert caught.value.retryable is True

    handlers: set[asyncio.Task[Any]] = set()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        up_reader, up_writer = await asyncio.open_connection(HOST, PORT)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(
            pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
        )

    server = await asyncio.start_server(forward, HOST, port)  # the database "comes up"
    try:
        await sink.deliver(submission)
        assert await pg.documents() == [submission]
    finally:
        await closed(sink)
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 10)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "missing required option 'dsn'"),
        ({"dsn": 5}, "option 'dsn' must be a URL like postgresql://"),
        ({"dsn": ""}, "option 'dsn' must be a URL like postgresql://"),
        ({"dsn": "mysql://u:s3cret@h/db"}, r"option 'dsn' must be .*\(got mysql://\)"),
        ({"dsn": "u:s3cret@h/db"}, "option 'dsn' must be a URL like postgresql://"),
        ({"dsn": "postgresql://u:s3cret@h:port/db"}, "option 'dsn' .* does not parse"),
        ({"dsn": "postgresql://u:s3cret@[::1/db"}, "option 'dsn' .* does not parse"),
        ({"dsn": "postgres://h/db", "table": "x;drop"}, "option 'table' must be a plain SQL"),
        ({"dsn": "postgres://h/db", "table": "a.b.c"}, "option 'table' must be a plain SQL"),
        ({"dsn": "postgres://h/db", "pool_min": -1}, "option 'pool_min' must be an integer"),
        ({"dsn": "postgres://h/db", "pool_max": 0}, "option 'pool_max' must be an integer"),
        ({"dsn": "postgres://h/db", "pool_max": "8"}, "option 'pool_max' must be an integer"),
        ({"dsn": "postgres://h/db", "pool_min": 5, "pool_max": 2}, "'pool_min' .* larger"),
        ({"dsn": "postgres://h/db", "schema": "x"}, "unknown option.*schema"),
    ],
)
def test_bad_options_are_refused_at_config(options: dict[str, Any], message: str) -> None:
    """A malformed DSN, bad table name, pool size or unknown option is a ValueError, secret-free."""
    with pytest.raises(ValueError, match=message) as caught:
        from_config(name="pg", options=options, base_dir=None)
    assert "s3cret" not in str(caught.value)


def test_good_options_are_accepted() -> None:
    """Both URL schemes, a schema-qualified table and pool sizes are accepted."""
    sink = from_config(
        name="pg",
        options={
            "dsn": "postgres://u:p@db.internal:6543/app?sslmode=require",
            "table": "crm.calls",
            "pool_min": 0,
            "pool_max": 3,
        },
        base_dir=None,
    )
    assert (sink.schema, sink.table, sink.pool_min, sink.pool_max) == ("crm", "calls", 0, 3)
    assert from_config(name="pg", options={"dsn": "postgresql:///test"}, base_dir=None).table == (
        "submissions"
    )
