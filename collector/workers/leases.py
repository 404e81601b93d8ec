"""Leases: the claims this instance holds on shared work, renewed while the work runs.

With a store several instances share (collector.ports.ClaimStore), each worker claims
what it does (a command, a delivery, a deadline) until a lease's end, and tells `Leases`
what it holds; every third of a lease, one statement per kind extends them all. An
instance that stops renewing (killed, frozen, cut off from the database) loses its claims
when their leases run out, and another instance takes the work over. A claim whose lease
had run out before it was renewed or finished counts as a lease expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from collector.ports import ClaimStore, Clock

log = structlog.get_logger("collector.leases")

LEASE_SECONDS = 15.0  # the default; settings.lease_seconds
SAFETY_POLL_SECONDS = 5.0  # the workers look for claimable work at least this often
KINDS = ("command", "delivery", "deadline")

ClaimListener = Callable[[str, str | None], None]  # (kind, taken from: another instance)


class Alarm:
    """Wakes a worker's loop: now (`ring`), or at the earliest time it is asked (`at`)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock
        self._event = asyncio.Event()
        self._next: tuple[float, asyncio.TimerHandle] | None = None

    def ring(self) -> None:
        self._event.set()

    def at(self, when: float) -> None:
        if self._next is not None:
            if self._next[0] <= when:
                return
            self._next[1].cancel()
        delay = max(0.0, when - self.clock())
        self._next = (when, asyncio.get_running_loop().call_later(delay, self._event.set))

    async def wait(self) -> None:
        """Until it rings; then it is unset, with no time asked."""
        await self._event.wait()
        self._event.clear()
        self.cancel()

    def cancel(self) -> None:
        if self._next is not None:
            self._next[1].cancel()
            self._next = None


class Leases:
    """What this instance holds, by kind, and a task that renews it."""

    def __init__(
        self,
        claims: ClaimStore,
        seconds: float = LEASE_SECONDS,
        *,
        clock: Clock = time.time,
        on_claim: ClaimListener | None = None,
        on_expiry: Callable[[str], None] | None = None,
    ) -> None:
        self.claims = claims
        self.seconds = seconds
        self.clock = clock
        self.on_claim = on_claim or (lambda kind, taken_from: None)
        self.on_expiry = on_expiry or (lambda kind: None)
        self._held: dict[str, dict[Any, float]] = {kind: {} for kind in KINDS}  # key: end
        self._runner: asyncio.Task[None] | None = None

    def until(self) -> float:
        """The end of a lease taken now."""
        return self.clock() + self.seconds

    def hold(self, kind: str, claimed: Iterable[tuple[Any, str | None]], until: float) -> None:
        """Note claims (key, whose lapsed lease it took over) made until `until`; one
        already held is renewed, not claimed again."""
        held = self._held[kind]
        for key, taken_from in claimed:
            if key not in held:
                self.on_claim(kind, taken_from)
            held[key] = until

    def drop(self, kind: str, key: Any) -> None:
        """The work is done (or given up): stop renewing its claim."""
        end = self._held[kind].pop(key, None)
        if end is not None and end < self.clock():
            self.on_expiry(kind)

    def held(self, kind: str) -> int:
        return len(self._held[kind])

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="leases")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            await self.renew()

    async def renew(self) -> None:
        """Extend every claim held; forget those no longer this instance's."""
        now = self.clock()
        until = now + self.seconds
        for kind, held in self._held.items():
            if not held:
                continue
            asked = dict(held)
            try:
                kept = await self.claims.renew(kind, list(asked), until)
            except Exception as exc:  # the next round tries again; the leases run meanwhile
                log.warning("lease_renewal_failed", kind=kind, error=str(exc)[:200])
                continue
            for key, end in asked.items():
                if key not in held:
                    continue  # done meanwhile
                if end < now:
                    self.on_expiry(kind)  # it lapsed before this renewal came
                if key in kept:
                    held[key] = until
                else:  # finished, or taken over by another instance once it lapsed
                    del held[key]

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
