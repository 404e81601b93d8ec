"""A cheap webhook poster for the fake Telnyx in the soak run, on aiohttp.

The fake's `WebhookSender` uses one method of an `httpx.AsyncClient`:
`post(url, content=, headers=, timeout=)` and the response's `status_code`. httpx's pool
looks at every pooled connection on each request, so at a few hundred webhooks a second
it used a whole core of the driver; aiohttp's keep-alive pool does the same work for a
fraction of that. The timeouts are the sender's: `timeout.read` for the answer (Telnyx's
2 s), `timeout.pool` to wait for a connection of our own pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int


class Poster:
    """`post()` as the fake's sender calls it, on one aiohttp session (made on first use)."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def post(
        self, url: str, *, content: bytes, headers: dict[str, str], timeout: Any
    ) -> Answer:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, skip_auto_headers=("User-Agent", "Content-Type")
            )
        limits = aiohttp.ClientTimeout(
            total=None, connect=timeout.pool, sock_connect=timeout.connect, sock_read=timeout.read
        )
        async with self._session.post(url, data=content, headers=headers, timeout=limits) as r:
            await r.read()
            return Answer(r.status)

    async def __aenter__(self) -> Poster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
