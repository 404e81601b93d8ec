"""A Python load generator that records when each webhook left: paced or as fast as allowed.

Not fast enough to saturate the server (wrk does that), but it knows each request's send
time, which the webhook-in to command-out latency needs. Events of one call are sent one
after the other (the next waits for the previous acknowledgement); different calls go
concurrently, up to `concurrency` requests in flight.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import uvloop
from nacl.signing import SigningKey

from bench.events import Event, sign_headers


@dataclass(frozen=True, slots=True)
class Sent:
    event: Event
    sent_at: float  # time.time(), as the fake API records command arrivals
    acked_at: float
    status: int  # 0: no response

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


async def _run(
    url: str, events: list[Event], key: SigningKey, rate: float | None, concurrency: int
) -> list[Sent]:
    ts = str(int(time.time()))
    headers = []
    for ev in events:
        sig, _ = sign_headers(ev.body, key, ts)
        headers.append(
            {
                "telnyx-signature-ed25519": sig,
                "telnyx-timestamp": ts,
                "content-type": "application/json",
                "user-agent": "telnyx-webhooks",
            }
        )
    results: list[Sent] = []
    limit = asyncio.Semaphore(concurrency)
    previous: dict[str, asyncio.Task[None]] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(i: int, before: asyncio.Task[None] | None) -> None:
            if before is not None:
                await before
            ev = events[i]
            async with limit:
                sent = time.time()
                try:
                    async with session.post(url, data=ev.body, headers=headers[i]) as r:
                        await r.read()
                        status = r.status
                except aiohttp.ClientError:
                    status = 0
                results.append(Sent(ev, sent, time.time(), status))

        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i, ev in enumerate(events):
            if rate:
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            task = asyncio.create_task(send(i, previous.get(ev.ccid)))
            previous[ev.ccid] = task
            tasks.append(task)
        await asyncio.gather(*tasks)
    return results


def send(
    url: str,
    events: list[Event],
    key: SigningKey,
    *,
    rate: float | None = None,
    concurrency: int = 16,
) -> list[Sent]:
    """Sign now and POST every event to `url`; `rate` events/s, or unpaced."""
    return uvloop.run(_run(url, events, key, rate, concurrency))
