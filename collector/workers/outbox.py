"""The command outbox: sends each call's Telnyx commands in the order they were decided.

Commands are already durable (saved with the decision) before they are sent, so a crash
re-sends them at start-up with the same `command_id`, which Telnyx drops within 60 s.
A command not confirmed within 45 s of being decided is not re-sent blindly: the call is
looked up (`retrieve_status`) and the command goes out again with a fresh `command_id`
only if the call is still alive; otherwise the session hears the call is gone.

A `dial` is never sent under a fresh `command_id` (that would be a second call): it is
sent, and retried under its own id, only within those 45 s (Telnyx drops a repeated dial
within 60 s), and not at all once its session has heard from the call (the dial went
through) or has ended (the ring deadline, a cancel). Past the window it is failed, and
its session ends `failed`: a late dial could ring the number twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from collector.core.session import events as E
from collector.core.session.commands import DIAL, RETRIEVE_STATUS, Command
from collector.errors import CommandRejected, CommandTransient
from collector.ports import CallControl, Clock, CommandStore, Feed

log = structlog.get_logger("collector.outbox")

CONFIRM_WITHIN_SECONDS = 45.0
GIVE_UP_AFTER_SECONDS = 600.0


@dataclass(slots=True)
class Outgoing:
    """A command on its way out."""

    session_id: str
    call_control_id: str
    command: Command
    retry: int = 0
    attempts: int = 0
    window_start: float = field(default=0.0)


class CommandOutbox:
    """One sender task per call with work; a shared bound on commands in flight."""

    def __init__(
        self,
        store: CommandStore,
        control: CallControl,
        feed: Feed,
        *,
        max_in_flight: int = 64,
        confirm_within: float = CONFIRM_WITHIN_SECONDS,
        give_up_after: float = GIVE_UP_AFTER_SECONDS,
        clock: Clock = time.time,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self.control = control
        self.feed = feed
        self.clock = clock
        self.confirm_within = confirm_within
        self.give_up_after = give_up_after
        self.on_result = on_result or (lambda action, outcome: None)
        self._queues: dict[str, deque[Outgoing]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._limit = asyncio.Semaphore(max_in_flight)
        self._closing = False

    def enqueue(self, session_id: str, call_control_id: str, commands: list[Command]) -> None:
        if not commands or self._closing:
            return
        queue = self._queues.setdefault(call_control_id, deque())
        for c in commands:
            queue.append(Outgoing(session_id, call_control_id, c, window_start=c.decided_at))
        if call_control_id not in self._tasks:
            self._tasks[call_control_id] = asyncio.create_task(
                self._drain(call_control_id), name=f"outbox:{call_control_id}"
            )

    async def restore(self) -> int:
        """Queue every command still pending in the store (after a restart)."""
        rows = await self.store.pending_commands()
        for row in rows:
            cmd = Command(action=row.action, seq=row.seq, body=row.body, decided_at=row.decided_at)
            self.enqueue(row.session_id, row.call_control_id, [cmd])
        return len(rows)

    async def _drain(self, ccid: str) -> None:
        queue = self._queues[ccid]
        try:
            while queue:
                await self._send(queue[0])
                queue.popleft()
        finally:
            self._tasks.pop(ccid, None)
            if not queue:
                self._queues.pop(ccid, None)

    async def _send(self, out: Outgoing) -> None:
        cmd = out.command
        if cmd.action == DIAL and not await self._dial_wanted(out, late=False):
            return
        while True:
            expired = self.clock() - out.window_start > self.confirm_within
            if expired and not await self._still_worth_sending(out):
                return
            out.attempts += 1
            try:
                async with self._limit:
                    result = await self.control.execute(
                        out.call_control_id,
                        cmd.action,
                        cmd.body,
                        cmd.command_id(out.session_id, out.retry),
                    )
            except CommandRejected as exc:
                self.on_result(cmd.action, "rejected")
                log.warning(
                    "command_rejected",
                    call_control_id=out.call_control_id,
                    action=cmd.action,
                    status=exc.status,
                    code=exc.code,
                    detail=exc.detail[:200],
                )
                await self._fail(
                    out, "failed", str(exc), exc.detail, code=exc.code, call_gone=exc.call_gone
                )
                return
            except CommandTransient as exc:
                self.on_result(cmd.action, "retry")
                if self.clock() - cmd.decided_at > self.give_up_after:
                    await self._fail(out, "failed", str(exc), f"gave up: {exc}")
                    return
                delay = min(30.0, 0.5 * 2 ** min(out.attempts, 6), self.confirm_within / 4)
                delay *= random.uniform(0.5, 1.0)
                log.info(
                    "command_retry",
                    call_control_id=out.call_control_id,
                    action=cmd.action,
                    error=str(exc)[:200],
                    delay=round(delay, 2),
                )
                await asyncio.sleep(delay)
                continue
            self.on_result(cmd.action, "ok")
            await self._finish(out, "sent")
            if cmd.action == RETRIEVE_STATUS:
                await self._feed(
                    E.CallStatus(
                        id=f"~status:{out.session_id}:{cmd.seq}",
                        call_control_id=out.call_control_id,
                        at=self.clock(),
                        alive=bool(result),
                    )
                )
            return

    async def _still_worth_sending(self, out: Outgoing) -> bool:
        """Past the confirm window: send again with a fresh id only if the call lives."""
        if out.command.action == DIAL:  # a fresh id would place a second call
            return await self._dial_wanted(out, late=True)
        if out.command.action == RETRIEVE_STATUS:
            out.window_start = self.clock()
            return True
        try:
            alive = await self.control.is_alive(out.call_control_id)
        except CommandTransient:
            return True  # cannot tell yet; keep trying with the same id
        if not alive:
            gone = "call ended before the command was confirmed"
            await self._fail(out, "expired", gone, gone, call_gone=True)
            return False
        out.retry += 1
        out.window_start = self.clock()
        log.info(
            "command_reissued",
            call_control_id=out.call_control_id,
            action=out.command.action,
            retry=out.retry,
        )
        await self._reissued(out)
        return True

    async def _dial_wanted(self, out: Outgoing, *, late: bool) -> bool:
        """Whether a dial is still to be sent: not once its session has its call's id (a
        webhook came: it went through) or has ended; not at all `late` (failed)."""
        try:
            session = await self.store.session(out.session_id)
        except Exception:  # the store cannot say now: within the window, dial anyway
            log.exception("dial_session_unread", call_control_id=out.call_control_id)
            session = None
        if session is not None and session.call_known:
            await self._finish(out, "sent")
            return False
        if session is not None and session.terminal:
            await self._finish(out, "expired", "the session ended before the call was placed")
            return False
        if late:
            why = f"not placed within {self.confirm_within:.0f} s: sent later it could ring twice"
            await self._fail(out, "expired", why, why)
            return False
        return True

    async def _reissued(self, out: Outgoing) -> None:
        """A command goes out again under a fresh id (a shared store records it)."""

    async def _fail(
        self,
        out: Outgoing,
        state: str,
        error: str,
        detail: str,
        *,
        code: str | None = None,
        call_gone: bool = False,
    ) -> None:
        """The command is done for good (`failed` or `expired`): record it, and tell its
        session with a CommandFailed."""
        await self._finish(out, state, error)
        cmd = out.command
        await self._feed(
            E.CommandFailed(
                id=f"~{state}:{out.session_id}:{cmd.seq}",
                call_control_id=out.call_control_id,
                at=self.clock(),
                seq=cmd.seq,
                action=cmd.action,
                code=code,
                detail=detail,
                call_gone=call_gone,
            )
        )

    async def _finish(self, out: Outgoing, state: str, error: str | None = None) -> None:
        try:
            await self.store.finish_command(
                out.session_id, out.command.seq, state, self.clock(), out.attempts, error
            )
        except Exception:
            # the command went out; a later restart re-sends it with the same command_id
            log.exception("command_state_not_saved", call_control_id=out.call_control_id)

    async def _feed(self, event: E.Event) -> None:
        try:
            await self.feed(event)
        except Exception:
            log.exception("feed_failed", call_control_id=event.call_control_id)

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def close(self, timeout: float = 5.0) -> None:
        """Stop taking work and give what is in flight a moment to finish."""
        self._closing = True
        tasks = list(self._tasks.values())
        if tasks:
            _, running = await asyncio.wait(tasks, timeout=timeout)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
