"""LISTEN/NOTIFY for the PostgreSQL store: notices between the instances of one database.

A notice is a hint that there is work or news (its payload `<instance> <id>`, far under
PostgreSQL's 8,000 bytes), never the work itself: the workers poll slowly as the safety
net, and a listener hears `None` after its connection was lost and is back.

Notices are sent after their step has committed, in batches (each loop turn's in one
round trip), on a connection of their own with `synchronous_commit` off. Not inside the
step: PostgreSQL takes a database-wide lock to queue a transaction's notifications and
holds it until that transaction's commit is on disk, which would put every step's commit
in one line. The price is that a notice can be lost if the instance dies between its
commit and the batch; the safety poll finds that work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import structlog

from collector.config import DatabaseUrl
from collector.ports import NOTICE_SESSION, NoticeCallback

log = structlog.get_logger("collector.store")

MAX_PAYLOAD_BYTES = 7999  # PostgreSQL refuses a notification payload of 8,000 bytes or more
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)  # then every 5 s

_SEND = "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t (c, p)"


class NoticeHub:
    """One instance's notices: posts them after commits, hears the others'."""

    def __init__(self, db: DatabaseUrl, instance: str, connect_timeout: float) -> None:
        self.db = db
        self.instance = instance
        self.connect_timeout = connect_timeout
        self.sent = 0  # notices handed to PostgreSQL (for tests and diagnostics)
        self._listeners: dict[str, list[tuple[NoticeCallback, bool]]] = {}
        self._conn: asyncpg.Connection[Any] | None = None
        self._lock = asyncio.Lock()  # one connect and one query at a time
        self._batch: list[tuple[str, str]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._closed = False

    # -- sending ----------------------------------------------------------------------

    def post(self, channel: str, ident: str) -> None:
        """Send a notice once this loop turn is over (with the turn's others)."""
        payload = f"{self.instance} {ident}"
        if self._closed or len(payload.encode()) > MAX_PAYLOAD_BYTES:
            return
        self._batch.append((channel, payload))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # the rest of this turn's notices join the batch
            while self._batch:
                batch, self._batch = list(dict.fromkeys(self._batch)), []
                try:
                    async with self._lock:
                        conn = await self._connected()
                        await conn.execute(_SEND, [c for c, _ in batch], [p for _, p in batch])
                    self.sent += len(batch)
                except Exception as exc:  # a hint lost: the safety poll covers it
                    error = self.db.scrub(str(exc))[:200]
                    log.debug("notices_not_sent", count=len(batch), error=error)
        finally:
            self._flushing = None

    # -- listening --------------------------------------------------------------------

    async def listen(self, channel: str, callback: NoticeCallback, *, own: bool = False) -> None:
        first = channel not in self._listeners
        self._listeners.setdefault(channel, []).append((callback, own))
        if first:
            async with self._lock:
                conn = await self._connected()
                await conn.add_listener(channel, self._heard)

    def _heard(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        origin, _, ident = str(payload).partition(" ")
        for callback, own in list(self._listeners.get(channel, ())):
            if own or origin != self.instance:
                _call(callback, ident)

    # -- the connection ---------------------------------------------------------------

    async def _connected(self) -> asyncpg.Connection[Any]:
        """The notice connection, opened if need be (the caller holds the lock)."""
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        if self._closed:
            raise RuntimeError("store is closed")
        conn = await asyncpg.connect(
            self.db.target,
            timeout=self.connect_timeout,
            server_settings={"synchronous_commit": "off", "application_name": "collector"},
        )
        try:
            conn.add_termination_listener(self._lost)
            for channel in self._listeners:
                await conn.add_listener(channel, self._heard)
        except BaseException:  # lost again, or cancelled by close(): never left open
            conn.terminate()
            raise
        self._conn = conn
        return conn

    def _lost(self, conn: Any) -> None:
        if self._closed or conn is not self._conn:
            return
        self._conn = None
        if self._listeners and self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Listen again once the server is back, then tell every listener to look."""
        try:
            attempt = 0
            while not self._closed:
                try:
                    async with self._lock:
                        await self._connected()
                    break
                except Exception as exc:
                    delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                    attempt += 1
                    log.warning(
                        "notices_reconnecting", error=self.db.scrub(str(exc))[:200], retry_in=delay
                    )
                    await asyncio.sleep(delay)
            for callbacks in list(self._listeners.values()):
                for callback, _ in list(callbacks):
                    _call(callback, None)
        finally:
            self._keeper = None

    async def close(self) -> None:
        """Send what is waiting, then let go of the connection."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._flushing), 2.0)
        self._closed = True
        for task in (self._keeper, self._flushing):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2.0)
            except Exception:
                conn.terminate()


def _call(callback: Callable[[str | None], None], ident: str | None) -> None:
    try:
        callback(ident)
    except Exception:
        log.exception("notice_listener_failed")


def session_notices(
    db: DatabaseUrl, connect_timeout: float = 10.0
) -> Callable[[Callable[[str], None]], Coroutine[Any, Any, None]]:
    """A coroutine function that LISTENs on `collector_session` until cancelled, calling
    back with the id of each session a committed step changed, on any instance (this one's
    included); on a connection of its own, opened again after it is lost."""

    async def run(callback: Callable[[str], None]) -> None:
        attempt = 0
        while True:
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await asyncpg.connect(db.target, timeout=connect_timeout)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())

                def heard(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
                    _, _, ident = str(payload).partition(" ")
                    try:
                        callback(ident or str(payload))
                    except Exception:
                        log.exception("notice_listener_failed")

                await conn.add_listener(NOTICE_SESSION, heard)
                attempt = 0
                await lost.wait()
            except Exception as exc:
                delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                attempt += 1
                log.warning("notices_reconnecting", error=db.scrub(str(exc))[:200], retry_in=delay)
                await asyncio.sleep(delay)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    return run
