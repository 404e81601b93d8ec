"""/readyz, for load balancers: 200 only while the store answers with this code's schema,
503 with the reason otherwise (the server unreachable, the schema behind or ahead); never
behind the admin token, never the URL's password. /healthz is untouched by it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from collector.adapters.store.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from collector.adapters.store.postgres_migrations import MIGRATIONS as PG_MIGRATIONS
from collector.config import load_settings
from collector.runtime import build_runtime
from collector.web.app import create_app
from tests.harness import free_socket, serve
from tests.pg import Forwarder, drop_schema, run_apart, scratch_database, scratch_schema
from tests.web.conftest import FIXTURES, TOKEN, assert_error, sandbox_server

pytestmark = pytest.mark.anyio

SECRET = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with scratch_database() as url:
        yield url


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A schema of this test's own; its URL carries a password (the server trusts us, so
    it is never sent) to show it never comes back."""
    schema, url = run_apart(lambda: scratch_schema(pg_database))
    try:
        yield url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@").replace(
            "postgresql://root@", f"postgresql://root:{SECRET}@"
        )
    finally:
        run_apart(lambda: drop_schema(pg_database, schema))


@asynccontextmanager
async def pg_server(tmp: Path, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A sandbox-mode server on `database_url`, with an admin token; yields a client that
    sends no credentials."""
    cfg = tmp / "collector.toml"
    cfg.write_text(
        f'forms_dir = "{FIXTURES / "forms"}"\n'
        f'database_url = "{database_url}"\n'
        f'admin_token = "{TOKEN}"\n'
        "sandbox_pace_seconds = 0.05\n",
        encoding="utf-8",
    )
    runtime = build_runtime(load_settings(cfg, {}), {})
    sock = free_socket()
    runtime.self_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with serve(create_app(runtime), sock) as url, httpx.AsyncClient(base_url=url) as anon:
        yield anon


def _ready(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body == {"status": "ready", "mode": "sandbox"}
    return body


async def test_a_healthy_sqlite_server_is_ready_without_credentials(tmp_path: Path) -> None:
    async with sandbox_server(tmp_path) as server:
        _ready(await server.anon.get("/readyz"))
        assert (await server.anon.get("/healthz")).status_code == 200
        assert (await server.anon.post("/readyz")).status_code == 405


async def test_a_sqlite_schema_behind_or_ahead_of_the_code_is_not_ready(tmp_path: Path) -> None:
    async with sandbox_server(tmp_path) as server:
        db = sqlite3.connect(tmp_path / "collector.db")
        try:
            db.execute("PRAGMA user_version = 0")
            body = assert_error(await server.anon.get("/readyz"), 503, "schema_outdated")
            assert "collector db upgrade" in body["error"]["message"]
            db.execute(f"PRAGMA user_version = {len(SQLITE_MIGRATIONS) + 1}")
            assert_error(await server.anon.get("/readyz"), 503, "schema_too_new")
            db.execute(f"PRAGMA user_version = {len(SQLITE_MIGRATIONS)}")
            _ready(await server.anon.get("/readyz"))
        finally:
            db.close()
        # liveness is not readiness: the process is up and its store writable throughout
        assert (await server.anon.get("/healthz")).status_code == 200


@pytest.mark.postgres
async def test_a_healthy_postgres_server_is_ready(tmp_path: Path, pg_url: str) -> None:
    async with pg_server(tmp_path, pg_url) as anon:
        _ready(await anon.get("/readyz"))


@pytest.mark.postgres
async def test_an_unreachable_postgres_is_not_ready_and_the_password_never_shows(
    tmp_path: Path, pg_url: str
) -> None:
    """The server goes away (every connection through the relay cut, new ones refused):
    503 store_unavailable naming where, without the password; back again, ready."""
    relay = Forwarder()
    await relay.up()
    url = pg_url.replace(":5432/", f":{relay.port}/")
    try:
        async with pg_server(tmp_path, url) as anon:
            _ready(await anon.get("/readyz"))
            await relay.down()
            response = await anon.get("/readyz")
            body = assert_error(response, 503, "store_unavailable")
            message = body["error"]["message"]
            assert f"127.0.0.1:{relay.port}" in message
            assert SECRET not in response.text and "\n" not in message
            await relay.up()
            _ready(await anon.get("/readyz"))
    finally:
        await relay.down()


@pytest.mark.postgres
async def test_a_postgres_schema_behind_or_ahead_of_the_code_is_not_ready(
    tmp_path: Path, pg_url: str
) -> None:
    async with pg_server(tmp_path, pg_url) as anon:
        conn = await asyncpg.connect(pg_url.replace(f":{SECRET}@", "@"))
        try:
            newest = len(PG_MIGRATIONS)
            await conn.execute("DELETE FROM schema_version WHERE version = $1", newest)
            body = assert_error(await anon.get("/readyz"), 503, "schema_outdated")
            assert f"version {newest - 1}, behind" in body["error"]["message"]
            await conn.execute(
                "INSERT INTO schema_version VALUES ($1, 0), ($2, 0)", newest, newest + 1
            )
            assert_error(await anon.get("/readyz"), 503, "schema_too_new")
            await conn.execute("DELETE FROM schema_version WHERE version = $1", newest + 1)
            _ready(await anon.get("/readyz"))
            await conn.execute("DROP TABLE schema_version")
            assert_error(await anon.get("/readyz"), 503, "schema_outdated")
        finally:
            await conn.close()
