"""The outbound worker tests' kit: a dial started as POST /api/calls starts one, and the
dialled call's webhooks (tests/fixtures/telnyx/outbound) carrying the dial's client_state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from collector.adapters.telephony import webhooks
from collector.core.forms import Form, load_forms
from collector.core.session import events as E
from collector.core.session.decide import Decision
from collector.core.session.outbound import new_session, pending_call_id, start
from collector.core.session.step import Policy
from collector.workers.engine import Engine, Router

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TO, FROM = "+13125550190", "+13125550100"
VARIABLES = {"first_name": "Maria", "item": "kettle"}
POLICY = Policy(hangup_grace_seconds=5.0)


def outbound_forms() -> dict[str, Form]:
    return dict(load_forms(FIXTURES / "outbound_forms"))


def make_engine(store: Any) -> tuple[Engine, list[tuple[str, Decision]]]:
    """A fresh engine on the outbound forms (nothing cached) and the decisions it makes."""
    engine = Engine(
        store=store,
        forms=outbound_forms(),
        router=Router(numbers={}),
        policy=POLICY,
        sinks_for=lambda form, status: ["jsonl"],
    )
    heard: list[tuple[str, Decision]] = []
    engine.listeners.append(lambda event, decision: heard.append((event.id, decision)))
    return engine, heard


def dial_event(sid: str, at: float, form: str = "warranty", **extra: Any) -> E.Dial:
    return E.Dial(
        id=f"~dial:{sid}",
        call_control_id=pending_call_id(sid),
        at=at,
        to=TO,
        from_=FROM,
        connection_id="conn-1",
        answering_machine_detection="detect",
        ring_timeout_seconds=30,
        variables=dict(VARIABLES) if form == "warranty" else {},
        **extra,
    )


async def begin(engine: Engine, sid: str, at: float = 1000.0, form: str = "warranty") -> str:
    """Start an outbound session as the API does; returns the dial's client_state."""
    dial = dial_event(sid, at, form)
    assert await engine.begin(new_session(sid, dial, engine.forms[form]), dial) == "applied"
    return dial_state(sid, at, form)


def dial_state(sid: str, at: float = 1000.0, form: str = "warranty") -> str:
    decision = start(sid, dial_event(sid, at, form), outbound_forms()[form], POLICY)
    (command,) = decision.commands
    return str(command.body["client_state"])


def outbound(name: str, event_id: str, ccid: str, at: float, state: str, **payload: Any) -> E.Event:
    """A webhook of the dialled call (a file of tests/fixtures/telnyx/outbound)."""
    doc = json.loads((FIXTURES / "telnyx" / "outbound" / f"{name}.json").read_text())
    doc["data"]["id"] = event_id
    doc["data"]["payload"].update(call_control_id=ccid, client_state=state, **payload)
    _, event = webhooks.parse(orjson.dumps(doc), at=at)
    assert isinstance(event, E.Event)
    return event
