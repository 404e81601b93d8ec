"""The workers one instance runs, made for its store: the command outbox, the delivery
worker and the timers.

With a store that is the process's own (SQLite) they work from memory and the store's
pending rows, as they always have. With a store several instances share (PostgreSQL,
`store.shared`) each claims its work under a lease (`Leases` renews what this instance
holds), and they wake on the notices other instances' steps send; polling every few
seconds is only the safety net.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from collector.metrics import Metrics
from collector.ports import (
    NOTICE_COMMAND,
    NOTICE_DEADLINE,
    NOTICE_DELIVERY,
    CallControl,
    ClaimStore,
    Clock,
    Feed,
    Notices,
    SessionStore,
    Sink,
)
from collector.workers.deadlines import SharedTimers
from collector.workers.delivery import DeliveryListener, DeliveryWorker
from collector.workers.leases import KINDS, Leases
from collector.workers.outbox import CommandOutbox
from collector.workers.shared_outbox import SharedOutbox
from collector.workers.timers import Timers

log = structlog.get_logger("collector")


@dataclass(slots=True)
class Workers:
    """The parts that run between Runtime.start() and Runtime.stop()."""

    control: CallControl
    outbox: CommandOutbox  # a SharedOutbox with a shared store
    delivery: DeliveryWorker
    timers: Timers | SharedTimers
    leases: Leases | None = None  # a shared store: the claims this instance holds

    async def start(self, store: SessionStore) -> tuple[int, int]:
        """Restore (or claim) the work waiting and start the loops; returns how many
        commands were restored and how many deadlines are tracked."""
        if self.leases is not None:
            await self._listen(store)
            self.leases.start()
        restored = await self.outbox.restore()
        deadlines = await store.sessions_with_deadlines()
        for session in deadlines:
            self.timers.track(session)  # shared: the timers wake for the earliest
        if isinstance(self.timers, SharedTimers):
            self.timers.start()  # it claims whatever is due, on any instance's sessions
        self.delivery.start()
        shared = isinstance(self.timers, SharedTimers)
        return restored, len(deadlines) if shared else len(self.timers)

    async def _listen(self, store: SessionStore) -> None:
        """Wake on the other instances' notices (the polls are the safety net)."""
        if not isinstance(store, Notices):
            return
        outbox, timers, delivery = self.outbox, self.timers, self.delivery
        try:
            if isinstance(outbox, SharedOutbox):
                await store.listen(NOTICE_COMMAND, outbox.notice)
            await store.listen(NOTICE_DELIVERY, lambda _: delivery.kick())
            if isinstance(timers, SharedTimers):
                await store.listen(NOTICE_DEADLINE, timers.notice)
        except Exception as exc:  # the polls still find the work, more slowly
            log.warning("notices_unavailable", error=str(exc)[:300])

    async def stop(self, store: SessionStore) -> None:
        """Let the work in flight finish (a moment), then let go of this instance's claims
        so that another instance takes the rest over now, not once the leases lapse."""
        await self.outbox.close()
        await self.delivery.close()
        if isinstance(self.timers, SharedTimers):
            await self.timers.close()
        else:
            self.timers.close()
        if self.leases is not None:
            await self.leases.close()
        if isinstance(store, ClaimStore):
            try:
                await store.release()
            except Exception:
                log.exception("claims_not_released")


def make_workers(
    store: SessionStore,
    control: CallControl,
    feed: Feed,
    sinks: Mapping[str, Sink],
    metrics: Metrics,
    *,
    lease_seconds: float,
    clock: Clock,
    on_delivery: DeliveryListener,
) -> Workers:
    """The workers for `store`: claiming ones if several instances share it."""

    def on_command(action: str, outcome: str) -> None:
        metrics.count(metrics.commands, action, outcome)

    if not (store.shared and isinstance(store, ClaimStore)):
        return Workers(
            control=control,
            outbox=CommandOutbox(store, control, feed, clock=clock, on_result=on_command),
            delivery=DeliveryWorker(store, sinks, clock=clock, on_result=on_delivery),
            timers=Timers(feed, clock=clock),
        )
    metrics.count_claims_for(KINDS)
    leases = Leases(
        store,
        lease_seconds,
        clock=clock,
        on_claim=metrics.count_claim,
        on_expiry=metrics.count_lease_expiry,
    )
    outbox = SharedOutbox(store, store, leases, control, feed, clock=clock, on_result=on_command)
    delivery = DeliveryWorker(
        store, sinks, clock=clock, on_result=on_delivery, claims=store, leases=leases
    )
    timers = SharedTimers(store, leases, feed, clock)
    return Workers(control, outbox, delivery, timers, leases)


__all__ = ["Workers", "make_workers"]
