"""The command outbox against a scriptable Telnyx API over real HTTP, through the real SDK."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from collector.adapters.store.sqlite import SqliteStore
from collector.adapters.telephony.control import TelnyxControl, make_client
from collector.core.session import events as E
from collector.core.session.commands import Command
from collector.core.session.model import CallInfo, Session
from collector.workers.outbox import CommandOutbox
from tests.harness import eventually, serve

pytestmark = pytest.mark.anyio


class ScriptedTelnyx:
    """Answers each action with the next scripted (status, body); records command ids."""

    def __init__(
        self,
        replies: list[tuple[int, dict[str, Any]]],
        alive: bool = True,
        unreachable_ids: frozenset[str] = frozenset(),
    ) -> None:
        self.replies = replies
        self.unreachable_ids = unreachable_ids  # always 503, as if lost on the way
        self.alive = alive
        self.seen: list[tuple[str, str]] = []  # (action, command_id)
        self.status_checks = 0

    async def action(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.seen.append((request.path_params["action"], body.get("command_id", "")))
        if body.get("command_id") in self.unreachable_ids:
            return JSONResponse({"errors": []}, status_code=503)
        status, reply = self.replies.pop(0) if self.replies else (200, {"data": {"result": "ok"}})
        return JSONResponse(reply, status_code=status)

    async def status(self, request: Request) -> JSONResponse:
        self.status_checks += 1
        return JSONResponse(
            {"data": {"call_control_id": request.path_params["ccid"], "is_alive": self.alive}}
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/calls/{ccid:path}/actions/{action}", self.action, methods=["POST"]),
                Route("/v2/calls/{ccid:path}", self.status, methods=["GET"]),
            ]
        )


async def _outbox(
    tmp_path: Path, api: str, **kw: Any
) -> tuple[CommandOutbox, SqliteStore, list[E.Event]]:
    store = SqliteStore(tmp_path / "c.db")
    await store.open()
    fed: list[E.Event] = []

    async def feed(ev: E.Event) -> None:
        fed.append(ev)

    control = TelnyxControl(make_client("KEY_test", f"{api}/v2", timeout=2))  # no SDK retries
    return CommandOutbox(store, control, feed, **kw), store, fed


async def _session(store: SqliteStore, cmds: list[Command]) -> None:
    s = Session(
        id="s1", form="contact", call=CallInfo(call_control_id="v3:abc"), started_at=0, updated_at=0
    )
    await store.commit_step(s, cmds)


async def test_commands_of_a_call_leave_in_decided_order(tmp_path: Path) -> None:
    """Batches enqueued one after the other go out strictly in sequence."""
    api = ScriptedTelnyx([])
    async with serve(api.app()) as url:
        outbox, store, _ = await _outbox(tmp_path, url)
        cmds = [
            Command(action=a, seq=i + 1, decided_at=1e12)
            for i, a in enumerate(["speak", "hangup", "gather_stop"])
        ]
        await _session(store, cmds)
        outbox.enqueue("s1", "v3:abc", cmds[:1])
        outbox.enqueue("s1", "v3:abc", cmds[1:])
        await eventually(lambda: _v(len(api.seen) == 3))
        assert [a for a, _ in api.seen] == ["speak", "hangup", "gather_stop"]
        assert [c for _, c in api.seen] == [c.command_id("s1") for c in cmds]
        await eventually(lambda: _v(outbox.pending() == 0))
        assert {r.state for r in await store.commands_for("s1")} == {"sent"}
        await _close(outbox, store)


async def test_the_sdk_retries_nothing_so_every_retry_is_the_outboxs(tmp_path: Path) -> None:
    """A 503 reaches Telnyx once per outbox attempt: the SDK client hides no retries."""
    assert make_client("KEY_test", "http://127.0.0.1:9/v2").max_retries == 0
    api = ScriptedTelnyx([(503, {"errors": []})])
    async with serve(api.app()) as url:
        outbox, store, _ = await _outbox(tmp_path, url)
        cmd = Command(action="answer", seq=1, decided_at=1e12)
        await _session(store, [cmd])
        outbox.enqueue("s1", "v3:abc", [cmd])
        await eventually(lambda: _v(outbox.pending() == 0))
        [row] = await store.commands_for("s1")
        assert row.state == "sent" and row.attempts == 2
        assert api.seen == [("answer", cmd.command_id("s1"))] * 2
        await _close(outbox, store)


async def test_call_gone_is_fed_back_and_not_retried(tmp_path: Path) -> None:
    """422 90018 (call has already ended) becomes a CommandFailed with call_gone."""
    api = ScriptedTelnyx(
        [(422, {"errors": [{"code": "90018", "title": "Call has already ended"}]})]
    )
    async with serve(api.app()) as url:
        outbox, store, fed = await _outbox(tmp_path, url)
        cmd = Command(action="speak", seq=1, decided_at=1e12)
        await _session(store, [cmd])
        outbox.enqueue("s1", "v3:abc", [cmd])
        await eventually(lambda: _v(fed))
        assert isinstance(fed[0], E.CommandFailed) and fed[0].call_gone and fed[0].code == "90018"
        assert (fed[0].call_control_id, fed[0].seq, fed[0].action) == ("v3:abc", 1, "speak")
        assert fed[0].detail == "Call has already ended"
        assert len(fed) == 1 and len(api.seen) == 1
        assert (await store.commands_for("s1"))[0].state == "failed"
        await _close(outbox, store)


async def test_unconfirmed_command_is_reissued_with_a_fresh_id_only_if_the_call_lives(
    tmp_path: Path,
) -> None:
    """Past the confirm window the call is looked up; alive: a new command_id goes out."""
    import time

    cmd = Command(action="hangup", seq=1, decided_at=time.time())
    api = ScriptedTelnyx([], alive=True, unreachable_ids=frozenset({cmd.command_id("s1")}))
    async with serve(api.app()) as url:
        outbox, store, fed = await _outbox(tmp_path, url, confirm_within=0.4)
        await _session(store, [cmd])
        outbox.enqueue("s1", "v3:abc", [cmd])
        await eventually(lambda: _v(outbox.pending() == 0), timeout=20)
        ids = [c for _, c in api.seen]
        assert ids[0] == cmd.command_id("s1") and len(ids) >= 2
        assert set(ids[:-1]) == {cmd.command_id("s1")}  # retried as it was until the window
        assert ids[-1] == cmd.command_id("s1", retry=1)
        assert {a for a, _ in api.seen} == {"hangup"}
        assert api.status_checks == 1 and fed == []
        assert (await store.commands_for("s1"))[0].state == "sent"
        await _close(outbox, store)


async def test_unconfirmed_command_for_a_dead_call_is_dropped_and_reported(tmp_path: Path) -> None:
    """Past the confirm window with the call gone: nothing is resent, the session hears."""
    api = ScriptedTelnyx([(503, {"errors": []})] * 50, alive=False)
    async with serve(api.app()) as url:
        import time

        outbox, store, fed = await _outbox(tmp_path, url, confirm_within=0.3)
        cmd = Command(action="gather_using_ai", seq=1, decided_at=time.time())
        await _session(store, [cmd])
        outbox.enqueue("s1", "v3:abc", [cmd])
        await eventually(lambda: _v(fed), timeout=20)
        assert isinstance(fed[0], E.CommandFailed) and fed[0].call_gone
        assert (fed[0].seq, fed[0].action) == (1, "gather_using_ai")
        assert len(fed) == 1 and api.status_checks == 1
        assert {c for _, c in api.seen} == {cmd.command_id("s1")}
        assert (await store.commands_for("s1"))[0].state == "expired"
        await _close(outbox, store)


async def test_pending_commands_are_restored_after_a_restart(tmp_path: Path) -> None:
    """Commands saved but not sent before a crash go out at start-up, same command_id."""
    api = ScriptedTelnyx([])
    async with serve(api.app()) as url:
        outbox, store, _ = await _outbox(tmp_path, url)
        cmd = Command(action="answer", seq=1, decided_at=1e12)
        await _session(store, [cmd])
        assert await outbox.restore() == 1
        await eventually(lambda: _v(api.seen))
        assert api.seen == [("answer", cmd.command_id("s1"))]
        await eventually(lambda: _v(outbox.pending() == 0))
        [row] = await store.commands_for("s1")
        assert (row.state, row.attempts) == ("sent", 1)
        await _close(outbox, store)


async def _close(outbox: CommandOutbox, store: SqliteStore) -> None:
    await outbox.close()
    await outbox.control.close()  # type: ignore[attr-defined]
    await store.close()


async def _v(value: Any) -> Any:
    await asyncio.sleep(0)
    return value
