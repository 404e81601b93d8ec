"""The delivery worker's test kit: sinks that record, fail or hold, a loopback webhook
receiver, the real store with each poll noted, and a worker run on a hand-moved clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.adapters.store.sqlite import SqliteStore
from collector.core.session.model import CallInfo, Session
from collector.ports import Sink
from collector.records import DeliveryRow
from collector.workers.delivery import DeliveryWorker, RetryPolicy
from tests.harness import eventually
from tests.sinks.contract import make_submission

from .conftest import T0, Clock

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# backoff windows of attempts 1, 2, 3: [5, 10], [10, 20], [20, 40] s; 40 s is the cap
POLICY = RetryPolicy(base_seconds=10.0, cap_seconds=40.0, max_attempts=5)


# -- sinks -----------------------------------------------------------------------------


class Recorder:
    """A Python sink: keeps every submission handed to it, raising the scripted failures
    first (one per call)."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls: list[dict[str, Any]] = []

    async def deliver(self, submission: dict[str, Any]) -> None:
        self.calls.append(submission)
        if self.failures:
            raise self.failures.pop(0)

    def ids(self) -> list[str]:
        return [s["submission_id"] for s in self.calls]


class Gate:
    """A sink that holds every delivery until `open` is set; counts how many it holds."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.calls: list[str] = []
        self.inside = 0
        self.most_inside = 0

    async def deliver(self, submission: dict[str, Any]) -> None:
        self.calls.append(submission["submission_id"])
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await self.open.wait()
        finally:
            self.inside -= 1


@dataclass
class Receiver:
    """A webhook endpoint on loopback: verifies each POST, answers the scripted statuses."""

    statuses: list[int] = field(default_factory=list)
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (webhook-id, body)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        payload = Webhook(SECRET).verify(body, dict(request.headers))
        self.seen.append((request.headers["webhook-id"], payload))
        return Response(status_code=self.statuses.pop(0) if self.statuses else 204)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])


# -- the store, observed ---------------------------------------------------------------


class Polls:
    """The real store as the worker's DeliveryStore, with each poll noted: when, and the
    ids it handed out."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.log: list[tuple[float, list[int], float | None]] = []

    async def poll_deliveries(
        self, now: float, limit: int = 100
    ) -> tuple[list[DeliveryRow], float | None]:
        rows, nxt = await self.store.poll_deliveries(now, limit)
        self.log.append((now, [r.id for r in rows], nxt))
        return rows, nxt

    async def update_delivery(self, row_id: int, **kw: Any) -> None:
        await self.store.update_delivery(row_id, **kw)


@dataclass
class Running:
    worker: DeliveryWorker
    polls: Polls
    clock: Clock
    outcomes: list[tuple[str, str, str]]  # (sink, outcome, submission_id)

    async def poll_now(self) -> tuple[list[int], float | None]:
        """Wake the worker and wait for a poll at the clock's time: what it found due."""
        seen = len(self.polls.log)
        self.worker.kick()

        async def polled() -> tuple[list[int], float | None] | None:
            await asyncio.sleep(0)
            for now, ids, nxt in self.polls.log[seen:]:
                if now == self.clock.now:
                    return ids, nxt
            return None

        found = await eventually(polled)
        return found


@asynccontextmanager
async def running(
    store: SqliteStore, sinks: Mapping[str, Sink], clock: Clock, policy: RetryPolicy = POLICY
) -> AsyncIterator[Running]:
    polls = Polls(store)
    outcomes: list[tuple[str, str, str]] = []
    worker = DeliveryWorker(
        polls,
        sinks,
        policy,
        clock=clock,
        on_result=lambda sink, outcome, row: outcomes.append((sink, outcome, row.submission_id)),
    )
    worker.start()
    try:
        yield Running(worker, polls, clock, outcomes)
    finally:
        await worker.close(timeout=5)


async def submit(store: SqliteStore, sid: str, sinks: list[str], at: float = T0) -> None:
    """A finished session whose submission goes to `sinks`, due at `at`."""
    session = Session(
        id=f"session-{sid}",
        form="contact",
        call=CallInfo(call_control_id=f"v3:{sid}"),
        started_at=at,
        updated_at=at,
    )
    await store.commit_step(session, submission=make_submission(sid), sinks=sinks)


async def rows_of(store: SqliteStore, sid: str) -> dict[str, DeliveryRow]:
    return {r.sink: r for r in await store.deliveries_for(sid)}


async def settled(store: SqliteStore, sid: str, sink: str, **expected: Any) -> DeliveryRow:
    """Wait until the delivery of `sid` to `sink` has the expected fields."""

    async def probe() -> DeliveryRow | None:
        row = (await rows_of(store, sid)).get(sink)
        if row is not None and all(getattr(row, k) == v for k, v in expected.items()):
            return row
        return None

    return await eventually(probe)


def window(policy: RetryPolicy, attempts: int) -> tuple[float, float]:
    ceiling = min(policy.cap_seconds, policy.base_seconds * 2 ** (attempts - 1))
    return ceiling / 2, ceiling
