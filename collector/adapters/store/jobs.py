"""How jobs reach the SQLite writer thread from asyncio, and come back once durable.

A job is a `Rows` (a step's writes, merged with the group's other rows) or a function of
the connection. The jobs of one event-loop turn are handed over together, so the writer
wakes once per turn and commits them as one group; each caller's future resolves only
after that COMMIT. Point lookups on the hot path (`read_now`) skip the round trip: they
run on a read-only connection of the event loop's own, beside the writer (WAL).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from collector.adapters.store.writer import Writer

T = TypeVar("T")


class WriterJobs:
    """Owns the writer thread of one SQLite file and queues jobs for it."""

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        on_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = str(path)
        self.synchronous = synchronous
        # called in the writer thread after each COMMIT: (its seconds, jobs it made durable)
        self.on_commit = on_commit
        self._writer: Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._waiting: dict[asyncio.AbstractEventLoop, list[Any]] = {}

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, self.synchronous, self.on_commit)
        self._writer.start()
        await asyncio.to_thread(self._writer.ready.wait)
        if self._writer.error is not None:
            raise self._writer.error
        if self.path != ":memory:":  # a second connection to :memory: is another database
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            reader.execute("PRAGMA query_only=ON")
            reader.execute("PRAGMA busy_timeout=100")
            self._reader = reader

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._writer is not None:
            self._writer.stop()
            await asyncio.to_thread(self._writer.join, 10)
            self._writer = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) in the writer thread, inside a transaction, once it is durable."""
        return await self._submit(fn)  # type: ignore[no-any-return]

    async def read_now(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """A small read on the loop's own read-only connection, without a writer round trip.

        WAL lets it read beside the writer, and it sees every committed transaction, so a
        caller that holds the call's lock sees that call's last step. For point lookups
        only (by key, a row or two): it runs in the event loop. Every row is fetched, so no
        read snapshot stays open to hold back checkpoints.
        """
        if self._reader is not None:
            try:
                return self._reader.execute(sql, args).fetchall()
            except sqlite3.OperationalError:
                pass  # busy (a checkpoint restarting the WAL): ask the writer instead
        return await self.run(lambda conn: conn.execute(sql, args).fetchall())

    async def _submit(self, job: Any) -> Any:
        if self._writer is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        waiting = self._waiting.get(loop)
        if waiting is None:
            # the first job of this loop turn: the rest of the turn's jobs join it, so the
            # writer wakes once per turn with everything the turn decided, not once per job
            waiting = self._waiting[loop] = []
            loop.call_soon(self._hand_over, loop)
        waiting.append((job, (loop, fut)))
        return await fut

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._waiting.pop(loop, [])
        if self._writer is None:
            error = RuntimeError("store is not open")
            for _, (_, fut) in jobs:
                if not fut.done():
                    fut.set_exception(error)
            return
        self._writer.submit_many(jobs)
