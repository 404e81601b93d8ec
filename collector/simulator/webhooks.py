"""Webhook delivery as Telnyx does it: signed, one ordered queue per call, redelivered.

Each event is POSTed as `{"data": {...}, "meta": {"attempt": n, "delivered_to": url}}`,
signed with Ed25519 (see `signing.py`). A receiver that answers non-2xx, or does not answer
within 2 s, gets the same event again (same `data.id`, `meta.attempt` + 1, signed afresh)
up to `retries` more times with a short backoff. Events of one call leave one at a time,
in the order they were produced; different calls deliver concurrently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from nacl.signing import SigningKey

from collector.simulator.calls import Delivery
from collector.simulator.signing import sign

__all__ = ["WebhookSender"]

log = logging.getLogger(__name__)


class WebhookSender:
    """Per-call ordered queues of webhooks, each drained by its own sender task."""

    def __init__(
        self,
        signing_key: SigningKey,
        *,
        http: Callable[[], httpx.AsyncClient],
        backoff: float = 0.05,
        timeout: float = 2.0,
        retries: int = 3,
    ) -> None:
        self.signing_key = signing_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.deliveries: list[Delivery] = []
        self.undelivered: list[dict[str, Any]] = []
        self._http = http
        self._queues: dict[str, asyncio.Queue[tuple[dict[str, Any], Callable[[], str]] | None]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._pending = 0
        self._drained: asyncio.Event | None = None
        self.on_first_send: Callable[[str, dict[str, Any]], None] | None = None

    @property
    def pending(self) -> int:
        """Events queued or being delivered."""
        return self._pending

    def send(self, call_control_id: str, data: dict[str, Any], url: Callable[[], str]) -> None:
        """Queue one event (`data` of the envelope) for delivery after the call's earlier ones."""
        queue = self._queues.get(call_control_id)
        if queue is None:
            queue = self._queues[call_control_id] = asyncio.Queue()
        worker = self._workers.get(call_control_id)
        if worker is None or worker.done():
            worker = asyncio.get_running_loop().create_task(self._work(call_control_id, queue))
            self._workers[call_control_id] = worker
        self._pending += 1
        self._drained_event().clear()
        queue.put_nowait((data, url))

    def finish(self, call_control_id: str) -> None:
        """No more events for this call: its sender stops once its queue is drained."""
        queue = self._queues.get(call_control_id)
        if queue is not None:
            queue.put_nowait(None)

    async def drained(self) -> None:
        """Wait until every queued event has been delivered (or given up on)."""
        while self._pending:
            await self._drained_event().wait()

    async def aclose(self) -> None:
        workers = [w for w in self._workers.values() if not w.done()]
        for w in workers:
            w.cancel()
        if workers:
            await asyncio.wait(workers)
        self._workers.clear()
        self._queues.clear()
        self._pending = 0
        self._drained_event().set()

    def _drained_event(self) -> asyncio.Event:
        if self._drained is None:
            self._drained = asyncio.Event()
            self._drained.set()
        return self._drained

    async def _work(
        self,
        call_control_id: str,
        queue: asyncio.Queue[tuple[dict[str, Any], Callable[[], str]] | None],
    ) -> None:
        while True:
            item = await queue.get()
            if item is None:
                if not queue.empty():
                    continue  # events queued after the call's end still go out
                self._queues.pop(call_control_id, None)
                self._workers.pop(call_control_id, None)
                return
            data, url = item
            try:
                await self._deliver(call_control_id, data, url)
            except Exception:  # never let one event stop the call's other events
                log.exception("fake telnyx: delivering %s failed", data.get("event_type"))
            finally:
                self._pending -= 1
                if self._pending <= 0:
                    self._pending = 0
                    self._drained_event().set()

    async def _deliver(
        self, call_control_id: str, data: dict[str, Any], url_of: Callable[[], str]
    ) -> None:
        envelope: dict[str, Any] = {}
        for attempt in range(1, self.retries + 2):
            status: int | None = None
            error: str | None = None
            url = ""
            try:
                url = url_of()
                envelope = {"data": data, "meta": {"attempt": attempt, "delivered_to": url}}
                if attempt == 1 and self.on_first_send is not None:
                    self.on_first_send(call_control_id, envelope)
                body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
                response = await self._http().post(
                    url,
                    content=body,
                    headers=sign(body, self.signing_key),
                    # the receiver has `timeout` to answer; waiting for a free connection
                    # of our own pool is not its fault
                    timeout=httpx.Timeout(self.timeout, pool=60.0),
                )
                status = response.status_code
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            record = Delivery(
                event_id=data["id"],
                event_type=data["event_type"],
                call_control_id=call_control_id,
                attempt=attempt,
                url=url,
                status_code=status,
                error=error,
                at=time.time(),
            )
            self.deliveries.append(record)
            if record.ok:
                return
            log.info(
                "fake telnyx: %s attempt %d to %s failed (%s)",
                data["event_type"],
                attempt,
                url,
                status if status is not None else error,
            )
            if attempt <= self.retries:
                await asyncio.sleep(min(2.0, self.backoff * 2 ** (attempt - 1)))
        self.undelivered.append(envelope)
