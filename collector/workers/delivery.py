"""The delivery worker: hands each submission to each of its sinks, until it lands.

Deliveries are rows written in the same transaction as the submission. The worker takes
due rows, delivers with a bound per sink, and on failure backs off exponentially with
jitter; past the attempt or age budget a delivery is `dead`, with its last error kept.
With a store several instances share (`claims`), it takes only the due rows it claims
(under a lease, renewed while the sink works), so each attempt is made by one instance;
an instance that dies leaves its claims to lapse, and another delivers them, under the
same delivery key (the sink's webhook-id). It then also polls every few seconds, and
wakes when another instance notifies that deliveries became due.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from collector.errors import DeliveryError
from collector.ports import ClaimStore, Clock, DeliveryStore, Sink
from collector.records import DeliveryRow
from collector.workers.leases import SAFETY_POLL_SECONDS, Leases

log = structlog.get_logger("collector.delivery")

DeliveryListener = Callable[[str, str, DeliveryRow], None]  # (sink, outcome, row)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: exponential backoff from `base` to `cap`, then dead."""

    base_seconds: float = 1.0
    cap_seconds: float = 300.0
    max_attempts: int = 12
    max_age_seconds: float = 86400.0
    per_sink_concurrency: int = 8

    def delay(self, attempts: int) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return random.uniform(ceiling / 2, ceiling)


class DeliveryWorker:
    """Drains due deliveries; wakes on kick() or when the next retry is due."""

    def __init__(
        self,
        store: DeliveryStore,
        sinks: Mapping[str, Sink],
        policy: RetryPolicy = RetryPolicy(),
        *,
        clock: Clock = time.time,
        on_result: DeliveryListener | None = None,
        claims: ClaimStore | None = None,
        leases: Leases | None = None,
    ) -> None:
        self.store = store
        self.claims = claims
        self.leases = leases
        self.idle_seconds = SAFETY_POLL_SECONDS if claims is not None else 30.0
        self.sinks = sinks
        self.policy = policy
        self.clock = clock
        self.on_result = on_result or (lambda sink, outcome, row: None)
        self._wake = asyncio.Event()
        self._in_flight: set[int] = set()
        self._limits = {name: asyncio.Semaphore(policy.per_sink_concurrency) for name in sinks}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="delivery-worker")

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                rows, nxt = await self._due()
            except Exception:
                log.exception("delivery_poll_failed")
                rows, nxt = [], None
                timeout = 5.0
            else:
                timeout = 1.0 if len(rows) >= 200 else self._until(nxt)
            for row in rows:
                if row.id in self._in_flight:
                    continue
                self._in_flight.add(row.id)
                task = asyncio.create_task(self._deliver(row))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _due(self) -> tuple[list[DeliveryRow], float | None]:
        if self.claims is None or self.leases is None:
            return await self.store.poll_deliveries(self.clock(), limit=200)
        until = self.leases.until()
        rows, nxt = await self.claims.claim_deliveries(self.clock(), until, limit=200)
        self.leases.hold("delivery", ((row.id, row.taken_from) for row in rows), until)
        return rows, nxt

    def _until(self, nxt: float | None) -> float:
        """How long to sleep until the next delivery not yet due (the poll's own rows are
        in flight: each either lands or, on failure, is rescheduled with a kick)."""
        if nxt is None:
            return self.idle_seconds
        return max(0.05, min(self.idle_seconds, nxt - self.clock()))

    async def _deliver(self, row: DeliveryRow) -> None:
        landed = False
        try:
            sink = self.sinks.get(row.sink)
            attempts = row.attempts + 1
            if sink is None:
                await self._retry_or_die(row, attempts, f"no sink named {row.sink!r} is configured")
                return
            assert row.submission is not None
            submission = row.submission
            if row.replay:
                # a redelivery on purpose: a new key, so receivers that dedupe accept it
                submission = {**submission, "replay": True, "delivery_key": row.key}
            try:
                async with self._limits[row.sink]:
                    await sink.deliver(submission)
            except DeliveryError as exc:
                if not exc.retryable:
                    await self._dead(row, attempts, str(exc))
                else:
                    await self._retry_or_die(row, attempts, str(exc))
                return
            except Exception as exc:
                await self._retry_or_die(row, attempts, f"{type(exc).__name__}: {exc}")
                return
            await self.store.update_delivery(
                row.id, state="delivered", attempts=attempts, at=self.clock()
            )
            landed = True
            self.on_result(row.sink, "delivered", row)
            log.info("delivered", sink=row.sink, submission_id=row.submission_id, attempts=attempts)
        except Exception:
            log.exception("delivery_bookkeeping_failed", sink=row.sink, delivery=row.id)
        finally:
            self._in_flight.discard(row.id)
            if self.leases is not None:
                self.leases.drop("delivery", row.id)
            if not landed:
                self.kick()  # rescheduled (or not recorded): poll again for its new time

    async def _retry_or_die(self, row: DeliveryRow, attempts: int, error: str) -> None:
        now = self.clock()
        if (
            attempts >= self.policy.max_attempts
            or now - row.created_at > self.policy.max_age_seconds
        ):
            await self._dead(row, attempts, error)
            return
        delay = self.policy.delay(attempts)
        await self.store.update_delivery(
            row.id, state="pending", attempts=attempts, at=now, next_at=now + delay, error=error
        )
        self.on_result(row.sink, "retried", row)
        log.warning(
            "delivery_retry",
            sink=row.sink,
            submission_id=row.submission_id,
            attempts=attempts,
            delay=round(delay, 2),
            error=error[:300],
        )

    async def _dead(self, row: DeliveryRow, attempts: int, error: str) -> None:
        await self.store.update_delivery(
            row.id, state="dead", attempts=attempts, at=self.clock(), error=error
        )
        self.on_result(row.sink, "dead", row)
        log.error(
            "delivery_dead", sink=row.sink, submission_id=row.submission_id, error=error[:300]
        )

    async def close(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
