"""The PostgreSQL store itself, on the machine's server: migrations under the advisory
lock, a schema newer than the code, a server that is down or drops us, what it refuses
that SQLite takes, and the messages that never hold the password. What every store does
is in test_contract*.py."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from collector.adapters.store.database import check, make_store, problem
from collector.adapters.store.postgres import DatabaseUnavailable, PostgresStore, SchemaTooNew
from collector.adapters.store.postgres_migrations import MIGRATIONS, upgrade
from collector.config import parse_database_url
from collector.core.session.commands import Command
from collector.errors import StoreRefused
from tests.pg import Forwarder
from tests.store.test_contract import session, submission

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

SECRET = "s3cret-Pa55word"


async def _versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_version ORDER BY 1")]
    finally:
        await conn.close()


async def test_two_upgrades_at_once_on_a_fresh_schema_apply_each_migration_once(
    pg_url: str,
) -> None:
    conns = [await asyncpg.connect(pg_url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(upgrade(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    # one starts from nothing; they take turns under the lock, each ends up to date
    assert min(results)[0] == 0 and [after for _, after in results] == [len(MIGRATIONS)] * 2
    assert await _versions(pg_url) == list(range(1, len(MIGRATIONS) + 1))


async def test_two_stores_opening_at_once_both_work_on_one_schema(pg_url: str) -> None:
    """Two instances starting together: both open, the schema is made once, each sees
    the other's writes."""
    one, two = PostgresStore(pg_url, pool_size=2), PostgresStore(pg_url, pool_size=2)
    await asyncio.gather(one.open(), two.open())
    try:
        schemas = [one.schema, two.schema]
        assert min(schemas) == (0, len(MIGRATIONS)) and max(schemas)[1] == len(MIGRATIONS)
        await one.commit_step(session(1), [Command(action="answer", seq=1)])
        assert await two.session_by_call("v3:c1") == session(1)
    finally:
        await one.close()
        await two.close()
    assert await _versions(pg_url) == list(range(1, len(MIGRATIONS) + 1))


async def test_a_schema_newer_than_the_code_is_refused_untouched(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("INSERT INTO schema_version VALUES ($1, 0)", len(MIGRATIONS) + 6)
    finally:
        await conn.close()
    with pytest.raises(SchemaTooNew) as caught:
        await PostgresStore(pg_url).open()
    found, known = len(MIGRATIONS) + 6, len(MIGRATIONS)
    assert str(caught.value) == (
        f"schema version {found} is newer than this collector ({known}): upgrade collector"
    )
    assert await check(parse_database_url(pg_url)) == str(caught.value)
    assert await _versions(pg_url) == [*range(1, known + 1), found]


def _with_password(url: str, host: str = "127.0.0.1", port: int = 5432) -> str:
    """`url`'s database and search_path, as user postgres with a password, at host:port."""
    rest = url.split("@", 1)[1].split("/", 1)[1]
    return f"postgresql://postgres:{SECRET}@{host}:{port}/{rest}"


@pytest.mark.parametrize("where", ["closed port", "no such database", "password in query"])
async def test_a_database_that_cannot_be_opened_is_one_line_without_the_password(
    pg_url: str, where: str
) -> None:
    url = {
        "closed port": _with_password(pg_url, port=1),
        "no such database": f"postgresql://postgres:{SECRET}@127.0.0.1:5432/no_such_db",
        "password in query": f"postgresql://127.0.0.1:1/db?user=postgres&password={SECRET}",
    }[where]
    db = parse_database_url(url)
    with pytest.raises(DatabaseUnavailable) as caught:
        await PostgresStore(db, connect_timeout=3).open()
    message = str(caught.value)
    assert SECRET not in message and SECRET not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is not None  # from None
    assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:")
    assert "\n" not in message and "***" in message
    line = await check(db)
    assert line == message


async def test_a_server_that_goes_away_is_transient_and_the_store_recovers(
    pg_url: str,
) -> None:
    """The server going away (a restart, a network fault) fails writes and reads with
    store errors that are not StoreRefused (the engine answers 503, Telnyx redelivers),
    /healthz says not writable, and once it is back the same store object works again."""
    relay = Forwarder()
    await relay.up()
    store = PostgresStore(pg_url.replace(":5432/", f":{relay.port}/"), pool_size=2)
    await store.open()
    try:
        await store.commit_step(session(1))
        await relay.down()
        for attempt in (store.commit_step(session(2)), store.session_by_call("v3:c1")):
            with pytest.raises(Exception) as caught:
                await attempt
            assert not isinstance(caught.value, StoreRefused), caught.value
        assert not await store.writable()
        await relay.up()
        await store.commit_step(session(2))
        assert await store.session("s2") is not None and await store.writable()
    finally:
        await store.close()
        await relay.down()


async def test_a_nul_in_a_text_column_is_refused_not_retried(pg_url: str) -> None:
    """PostgreSQL text holds no NUL (SQLite's does): such a step is refused whole; in a
    JSON body a NUL is kept (the contract's round trip)."""
    store = PostgresStore(pg_url)
    await store.open()
    try:
        with pytest.raises(StoreRefused):
            await store.commit_step(session(1, form="con\x00tact"))
        with pytest.raises(StoreRefused):
            await store.commit_step(session(2), submission=submission("x\x00"), sinks=["a"])
        assert await store.list_sessions() == []
    finally:
        await store.close()


async def test_each_write_is_reported_to_on_commit(pg_url: str) -> None:
    reports: list[tuple[float, int]] = []

    def on_commit(seconds: float, jobs: int) -> None:
        reports.append((seconds, jobs))
        if len(reports) == 1:
            raise RuntimeError("a broken metrics backend")

    store = make_store(parse_database_url(pg_url), on_commit=on_commit)
    await store.open()
    try:
        await store.commit_step(session(1))  # the listener raises: the step stands
        await store.finish_command("s1", 1, "sent", 2.0, 1)
    finally:
        await store.close()
    assert [jobs for _, jobs in reports] == [1, 1] and all(s > 0 for s, _ in reports)


async def test_the_store_keeps_to_the_schema_its_url_names(pg_url: str, pg_database: str) -> None:
    """`?search_path=` puts every table in that schema, none in public."""
    store = PostgresStore(pg_url)
    await store.open()
    await store.close()
    schema = pg_url.rsplit("=", 1)[1]
    conn = await asyncpg.connect(pg_database)
    try:
        tables: dict[str, Any] = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT table_name, table_schema FROM information_schema.tables"
                " WHERE table_name IN ('sessions', 'schema_version')"
            )
        }
    finally:
        await conn.close()
    assert tables == {"sessions": schema, "schema_version": schema}


async def test_a_problem_of_any_other_kind_names_its_type_and_no_password(pg_url: str) -> None:
    db = parse_database_url(_with_password(pg_url))
    line = problem(db, ValueError(f"odd {SECRET} value\nsecond line"))
    assert line == f"{db.shown}: ValueError: odd *** value"
