"""The machine's PostgreSQL server for the PostgreSQL passes: a fresh database per pass,
and the CPU its server processes use.

The server is the one on 127.0.0.1:5432 (user postgres, else root; trust auth), as the
tests use. It is not pinned to a core: its processes run wherever the kernel puts them,
beside the collector on core 0 and the load on core 1.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

HOST, PORT = "127.0.0.1", 5432
USERS = ("postgres", "root")


async def _connect(database: str = "postgres") -> tuple[str, asyncpg.Connection[Any]]:
    error: BaseException | None = None
    for user in USERS:
        dsn = f"postgresql://{user}@{HOST}:{PORT}/{database}"
        try:
            return dsn, await asyncpg.connect(dsn, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            error = exc
    raise RuntimeError(f"no PostgreSQL on {HOST}:{PORT}: {type(error).__name__}: {error}")


def unavailable() -> str | None:
    """Why the PostgreSQL passes cannot run here (None: they can)."""

    async def probe() -> None:
        _, conn = await _connect()
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return str(exc)
    return None


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new, empty database (`collector_bench_<random>`), dropped afterwards: its URL."""
    name = f"collector_bench_{uuid.uuid4().hex[:12]}"

    async def create() -> str:
        dsn, conn = await _connect()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return dsn.rsplit("/", 1)[0] + f"/{name}"

    async def drop() -> None:
        _, conn = await _connect()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    url = asyncio.run(create())
    try:
        yield url
    finally:
        asyncio.run(drop())


def _server_pids(url: str) -> list[int]:
    """The backends connected to the database of `url`, and the server's WAL writer,
    checkpointer and background writer (shared with whatever else uses the server)."""

    async def read() -> list[int]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE (datname = current_database()"
                " AND pid <> pg_backend_pid()) OR backend_type IN"
                " ('walwriter', 'checkpointer', 'background writer')"
            )
        finally:
            await conn.close()
        return [int(r[0]) for r in rows]

    return asyncio.run(read())


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerCpu:
    """The CPU the PostgreSQL server spent for one database during a pass."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pct = float("nan")
        self._start: tuple[float, dict[int, float]] | None = None

    def start(self) -> None:
        self._start = (time.monotonic(), {p: _cpu(p) for p in _server_pids(self.url)})

    def stop(self) -> None:
        assert self._start is not None
        wall0, before = self._start
        used = sum(_cpu(p) - before.get(p, 0.0) for p in _server_pids(self.url))
        self.pct = 100 * used / (time.monotonic() - wall0)
