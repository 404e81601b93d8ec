"""The PostgreSQL server the tests use: 127.0.0.1:5432, user postgres (or root), trust auth.

Without a reachable server a test that needs it is skipped, except under CI=true, where
it fails. `scratch_database()` makes a database of its own for a test run and drops it
afterwards; `scratch_schema()` a schema of its own in it for one test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg
import pytest

HOST, PORT = "127.0.0.1", 5432
T = TypeVar("T")


def skip_or_fail(message: str) -> None:
    """Skip, or fail under CI=true: there a PostgreSQL test must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


async def connect_or_skip(database: str = "test") -> tuple[str, asyncpg.Connection[Any]]:
    """(the DSN that worked, a connection to `database`), trying users postgres and root."""
    error: BaseException | None = None
    for user in ("postgres", "root"):
        dsn = f"postgresql://{user}@{HOST}:{PORT}/{database}"
        try:
            return dsn, await asyncpg.connect(dsn, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            error = exc
    skip_or_fail(f"no PostgreSQL on {HOST}:{PORT}: {type(error).__name__}: {error}")
    raise AssertionError("unreachable")


def run_apart(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end on an event loop of its own, in a thread: for sync
    fixtures, whatever loop the tests run on."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()  # type: ignore[arg-type]


@contextmanager
def scratch_database(prefix: str = "collector_test") -> Iterator[str]:
    """A database of its own (`<prefix>_<random>`), dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def create() -> str:
        dsn, conn = await connect_or_skip()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return dsn.rsplit("/", 1)[0] + f"/{name}"

    url = run_apart(create)
    try:
        yield url
    finally:

        async def drop() -> None:
            _, conn = await connect_or_skip()
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        run_apart(drop)


async def scratch_schema(database_url: str) -> tuple[str, str]:
    """A new schema in the database: (its name, the URL that works in it: search_path)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    return schema, f"{database_url}?search_path={schema}"


async def drop_schema(database_url: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


class Forwarder:
    """A TCP relay to the server on a port of its own, which a test can take down (every
    connection through it cut, new ones refused) and bring back up: the database going
    away and coming back, as a restart or a network fault looks to the client."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # known before the upstream connect, so a down() meanwhile cuts this client too (it
        # was left half-open: asyncpg's connect then hung until a timeout cancelled it,
        # leaving an unclosed connection behind)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, PORT)
        except OSError:
            writer.transport.abort()
            return
        if self._server is None or writer not in self._writers:  # down() came meanwhile
            writer.transport.abort()
            up_writer.transport.abort()
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
