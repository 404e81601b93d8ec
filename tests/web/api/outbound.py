"""What the outbound API tests share: a sandbox server with the outbound forms, dialling
through POST /api/calls, and what the fake Telnyx saw of each call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from collector.simulator.calls import RecordedCommand
from collector.simulator.fake_telnyx import FakeTelnyx
from tests.harness import eventually
from tests.web.conftest import FIXTURES, Server, sandbox_server

OUTBOUND_FORMS = FIXTURES / "outbound_forms"
TO = "+13125550190"
SANDBOX_FROM = "+13125550100"
VARIABLES = {"first_name": "Maria", "item": "kettle"}
GREETING = "Hi Maria, this is Acme calling about your kettle."
VOICEMAIL = "Hi Maria, this is Acme about your kettle. Please call us back."
GOODBYE = "Thanks Maria, goodbye."


@asynccontextmanager
async def outbound_server(tmp: Path, pace: float = 0.02, extra: str = "") -> AsyncIterator[Server]:
    """A sandbox server whose forms are `warranty` (a voicemail message, placeholders) and
    `plain` (neither)."""
    async with sandbox_server(tmp, pace=pace, forms=OUTBOUND_FORMS, extra=extra) as server:
        yield server


def fake(server: Server) -> FakeTelnyx:
    sandbox = server.runtime.sandbox
    assert sandbox is not None
    return sandbox.fake


async def dial(server: Server, **body: Any) -> str:
    """POST /api/calls (to TO, form warranty, VARIABLES unless given); the session id."""
    payload = {"to": TO, "form": "warranty", "variables": VARIABLES, **body}
    response = await server.client.post("/api/calls", json=payload)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "dialing" and answer["dashboard_url"] == (
        f"/calls/{answer['session_id']}"
    )
    return str(answer["session_id"])


async def over(server: Server, session_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The session once its submission has settled and its call is over (the goodbye
    spoken, the hangup in), with nothing left for the fake to deliver."""
    await server.finished(session_id, timeout)

    async def ended() -> dict[str, Any] | None:
        view = await server.session(session_id)
        return view if not view["call"]["alive"] and view["deadline"] is None else None

    await eventually(ended, timeout=timeout, interval=0.05)
    await fake(server).idle()
    return await server.session(session_id)


def dialled(server: Server, view: dict[str, Any]) -> list[RecordedCommand]:
    """What the fake accepted for the session's call: its dial, then every command."""
    ccid = view["call"]["call_control_id"]
    return fake(server).commands(ccid)


def actions(server: Server, view: dict[str, Any]) -> list[str]:
    return [c.action for c in dialled(server, view)]
