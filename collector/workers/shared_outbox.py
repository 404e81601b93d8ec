"""The command outbox of an instance that shares its store with others (PostgreSQL).

It sends only what it has claimed (ClaimStore.claim_commands): a session's pending
commands, claimed together once its first pending one is free, so each is sent by one
instance, in decided order, with the command's own id (CommandOutbox does the sending,
the confirm window and its fresh id after `retrieve_status`, recorded with
reissue_command() so that whoever takes the command over sends it under the same id).
A session is drained by one task here; whatever its steps decide meanwhile, on this
instance (enqueue) or another (a notice), makes the task claim again before it ends.
A slow poll claims what nobody holds (after a restart, or a lapsed lease); it also comes
when a claim of another instance it knows of runs out (one it was told of but could not
claim), so that a dead instance's commands are taken over once its lease has lapsed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from collector.core.session.commands import Command
from collector.ports import CallControl, ClaimStore, CommandStore, Feed
from collector.records import CommandRow
from collector.workers.leases import SAFETY_POLL_SECONDS, Alarm, Leases
from collector.workers.outbox import CommandOutbox, Outgoing

log = structlog.get_logger("collector.outbox")

POLL_SESSIONS = 100  # sessions claimed per poll


class SharedOutbox(CommandOutbox):
    """Sends the commands this instance claims; one drain task per session."""

    def __init__(
        self,
        store: CommandStore,
        claims: ClaimStore,
        leases: Leases,
        control: CallControl,
        feed: Feed,
        *,
        poll_seconds: float = SAFETY_POLL_SECONDS,
        **kw: Any,
    ) -> None:
        super().__init__(store, control, feed, **kw)
        self.claims = claims
        self.leases = leases
        self.poll_seconds = poll_seconds
        self._again: set[str] = set()  # sessions to claim again before their task ends
        self._alarm = Alarm(self.clock)
        self._poller: asyncio.Task[None] | None = None

    def enqueue(self, session_id: str, call_control_id: str, commands: list[Command]) -> None:
        if commands and not self._closing:
            self._drain_soon(session_id)

    def notice(self, session_id: str | None) -> None:
        """Another instance's step decided commands (None: notices may have been lost)."""
        if self._closing:
            return
        if session_id is None:
            self._alarm.ring()
        else:
            self._drain_soon(session_id)

    def _drain_soon(self, session_id: str) -> None:
        if session_id in self._tasks:
            self._again.add(session_id)
            return
        self._tasks[session_id] = asyncio.create_task(
            self._drain_session(session_id), name=f"outbox:{session_id}"
        )

    async def restore(self) -> int:
        """Claim what nobody holds now, and keep polling slowly for more."""
        rows, _ = await self._poll_once()
        self._poller = asyncio.create_task(self._poll(), name="outbox-poll")
        return len(rows)

    async def _poll_once(self) -> tuple[list[CommandRow], float | None]:
        until = self.leases.until()
        rows, nxt = await self.claims.claim_commands(self.clock(), until, limit=POLL_SESSIONS)
        self._hold(rows, until)
        for session_id in dict.fromkeys(row.session_id for row in rows):
            self._drain_soon(session_id)
        return rows, nxt

    async def _poll(self) -> None:
        while not self._closing:
            try:
                rows, nxt = await self._poll_once()
            except Exception:
                log.exception("command_poll_failed")
                rows, nxt = [], None
            now = self.clock()
            if len({row.session_id for row in rows}) >= POLL_SESSIONS:
                self._alarm.at(now + 0.05)
            else:
                self._alarm.at(now + self.poll_seconds)
                if nxt is not None:  # when a claim of another instance runs out next
                    self._alarm.at(max(nxt, now + 0.1))
            await self._alarm.wait()

    def _hold(self, rows: list[CommandRow], until: float) -> None:
        self.leases.hold("command", ((row.id, row.taken_from) for row in rows), until)

    async def _drain_session(self, session_id: str) -> None:
        first = True
        try:
            while not self._closing:
                self._again.discard(session_id)
                until = self.leases.until()
                try:
                    rows, _ = await self.claims.claim_commands(
                        self.clock(), until, session_id=session_id
                    )
                except Exception:  # the poll claims it later
                    log.exception("command_claim_failed", session_id=session_id)
                    return
                self._hold(rows, until)
                if not rows:
                    if session_id in self._again:
                        continue
                    if first:  # another instance holds them: look when its lease may end
                        self._alarm.at(until)
                    return
                first = False
                for row in rows:
                    if self._closing:
                        return
                    try:
                        await self._send(_outgoing(row))
                    finally:
                        self.leases.drop("command", row.id)
        finally:
            self._tasks.pop(session_id, None)

    async def _reissued(self, out: Outgoing) -> None:
        try:
            await self.claims.reissue_command(
                out.session_id, out.command.seq, out.retry, out.window_start
            )
        except Exception:  # a takeover would then re-send under the earlier id
            log.exception("command_reissue_not_saved", call_control_id=out.call_control_id)

    def pending(self) -> int:
        return self.leases.held("command")

    async def close(self, timeout: float = 5.0) -> None:
        self._closing = True
        self._alarm.cancel()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        await super().close(timeout)


def _outgoing(row: CommandRow) -> Outgoing:
    """A claimed command as the sender takes it: its retry and window as last sent."""
    command = Command(action=row.action, seq=row.seq, body=row.body, decided_at=row.decided_at)
    start = row.window_start if row.window_start is not None else row.decided_at
    return Outgoing(
        row.session_id, row.call_control_id, command, retry=row.retry, window_start=start
    )


__all__ = ["SharedOutbox"]
