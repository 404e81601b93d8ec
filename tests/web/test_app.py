"""The whole server over real HTTP, in live mode, against the fake Telnyx API (the webhook
endpoint's own contract: tests/web/test_ingress.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.core.session.client_state import decode
from tests.harness import eventually
from tests.live_stack import NUMBER, Stack, live_stack

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(name="stack")
async def _stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with live_stack(tmp_path) as stack:
        yield stack


async def test_a_call_is_answered_gathered_validated_delivered_once_and_hung_up(
    stack: Stack,
) -> None:
    """End to end: answer, gather with the form's exact schema, one JSONL line, hangup."""
    ccid = await stack.fake.place_call(to=NUMBER)
    subs = await eventually(stack.submissions)
    await eventually(lambda: _async(not stack.fake.calls[ccid].alive))
    assert len(subs) == 1
    sub = subs[0]
    assert sub["status"] == "completed"
    assert sub["data"] == {
        "name": "Maria Gonzalez",
        "email": "maria.gonzalez@example.com",
        "age": 36,
    }
    assert sub["call"]["call_control_id"] == ccid and sub["call"]["direction"] == "incoming"
    assert (
        sub["form"] == "contact" and sub["form_version"] == stack.runtime.forms["contact"].version
    )
    actions = [r.action for r in stack.fake.commands(ccid)]
    assert actions == ["answer", "gather_using_ai", "speak", "hangup"]
    gather = stack.fake.commands(ccid, "gather_using_ai")[0].body
    assert gather["parameters"] == stack.runtime.forms["contact"].parameters
    assert decode(gather["client_state"]).attempt == 1
    assert stack.fake.rejected == []
    assert len({r.command_id for r in stack.fake.commands(ccid)}) == 4
    assert len(await stack.submissions()) == 1


async def test_a_wrong_email_is_reasked_alone_then_completed(stack: Stack) -> None:
    """The re-ask carries only the email (with its format) and the conversation so far."""
    script = {"attempts": [{"email": "maria.gonzalez.example.com"}, {"email": "maria@example.com"}]}
    from collector.simulator.script import CallScript

    ccid = await stack.fake.place_call(to=NUMBER, script=CallScript.parse(script))
    subs = await eventually(stack.submissions)
    gathers = stack.fake.commands(ccid, "gather_using_ai")
    assert len(gathers) == 2
    second = gathers[1].body
    assert list(second["parameters"]["properties"]) == ["email"]
    assert second["parameters"]["properties"]["email"]["format"] == "email"
    assert second["parameters"]["required"] == ["email"]
    assert second["message_history"]
    assert subs[0]["status"] == "completed"
    assert subs[0]["data"]["email"] == "maria@example.com"
    assert subs[0]["data"]["name"] == "Maria Gonzalez"
    assert stack.fake.rejected == []


async def test_caller_hanging_up_mid_gather_is_abandoned_with_what_was_valid(stack: Stack) -> None:
    """A hangup during the gather ends abandoned, keeping the fields already given."""
    from collector.simulator.script import CallScript

    ccid = await stack.fake.place_call(to=NUMBER, script=CallScript.parse({"hangup_after": 1}))
    subs = await eventually(stack.submissions)
    assert subs[0]["status"] == "abandoned"
    assert subs[0]["data"] == {"name": "Maria Gonzalez"}
    assert "hangup" not in [r.action for r in stack.fake.commands(ccid)]


async def test_call_to_an_unrouted_number_gets_a_message_and_a_hangup(
    tmp_path: Path, stack: Stack
) -> None:
    """No form for the number: answered, told politely, hung up, nothing delivered."""
    ccid = await stack.fake.place_call(to="+13125550999")
    await eventually(lambda: _async(not stack.fake.calls[ccid].alive))
    assert [r.action for r in stack.fake.commands(ccid)] == ["answer", "speak", "hangup"]
    assert await stack.submissions() == []


async def _async(value: Any) -> Any:
    return value


def _fixture(name: str) -> bytes:
    return (FIXTURES / "telnyx" / f"{name}.json").read_bytes()


async def test_healthz_and_metrics(stack: Stack) -> None:
    """/healthz says the store is writable; /metrics exposes the pinned families."""
    r = await stack.client.get(f"{stack.url}/healthz")
    assert r.status_code == 200 and r.json()["store"] == "writable" and r.json()["mode"] == "live"
    await stack.fake.place_call(to=NUMBER)
    await eventually(stack.submissions)
    text = (await stack.client.get(f"{stack.url}/metrics")).text
    for family in (
        "collector_webhook_events_total",
        "collector_webhook_ack_seconds",
        "collector_telnyx_commands_total",
        "collector_sessions",
        "collector_deliveries",
        "collector_oldest_pending_delivery_seconds",
    ):
        assert family in text
    assert 'collector_telnyx_commands_total{action="answer",outcome="ok"}' in text
    # the store's group commits: how many, how long, how many jobs each carried
    families = {f.name: f for f in text_string_to_metric_families(text)}
    commits = {s.name: s.value for s in families["collector_store_commit_seconds"].samples}
    jobs = families["collector_store_committed_jobs"].samples[0].value
    assert commits["collector_store_commit_seconds_count"] >= 1
    assert commits["collector_store_commit_seconds_sum"] > 0
    assert jobs >= commits["collector_store_commit_seconds_count"]


async def test_digits_field_wrong_through_ai_goes_to_the_keypad(stack: Stack) -> None:
    """age stays wrong by voice: gather_using_speak with its digit bounds; digits complete."""
    from collector.simulator.script import CallScript

    script = CallScript.parse({"answers": {"age": 400}, "keypad": {"age": "42"}})
    ccid = await stack.fake.place_call(to=NUMBER, script=script)
    subs = await eventually(stack.submissions)
    keypad = stack.fake.commands(ccid, "gather_using_speak")
    assert len(keypad) == 1
    assert keypad[0].body["maximum_digits"] == 3
    assert "age" in keypad[0].body["payload"]
    assert subs[0]["status"] == "completed"
    assert subs[0]["data"]["age"] == 42
    assert subs[0]["fields"]["age"]["source"] == "keypad"
    assert stack.fake.rejected == []


async def test_confirmation_correct_then_confirm(stack: Stack) -> None:
    """confirm: 2 re-asks, the corrected value is read back, 1 confirms it."""
    from collector.simulator.script import CallScript

    script = CallScript.parse(
        {
            "attempts": [
                {"account": "111111", "pin": "4321"},
                {"account": "222222", "pin": "4321"},
            ],
            "keypad": ["2", "1"],
        }
    )
    ccid = await stack.fake.place_call(to="+13125550002", script=script)
    subs = await eventually(stack.submissions)
    confirms = stack.fake.commands(ccid, "gather_using_speak")
    assert len(confirms) == 2
    assert "4321" not in confirms[0].body["payload"]
    assert subs[0]["status"] == "completed"
    assert subs[0]["data"] == {"account": "222222", "pin": "4321"}
    assert stack.fake.rejected == []


async def test_completed_form_is_handed_to_the_assistant(stack: Stack) -> None:
    """after: ai_assistant_start (valid per the SDK's types) once the form is complete."""
    ccid = await stack.fake.place_call(to="+13125550003")
    subs = await eventually(stack.submissions)
    assert subs[0]["status"] == "completed"
    await eventually(lambda: _async(not stack.fake.calls[ccid].alive))
    actions = [r.action for r in stack.fake.commands(ccid)]
    assert actions[:3] == ["answer", "gather_using_ai", "ai_assistant_start"]

    # the simulated caller leaves at once, so add_messages may meet a call that has ended
    def sent() -> list[str]:
        refused = [r.action for r in stack.fake.refused if r.call_control_id == ccid]
        return [r.action for r in stack.fake.commands(ccid)] + refused

    await eventually(lambda: _async("ai_assistant_add_messages" in sent()))
    start = stack.fake.commands(ccid, "ai_assistant_start")[0].body
    assert "budget" not in start["assistant"]["dynamic_variables"]
    assert stack.fake.rejected == []

    async def conversation_recorded() -> bool:
        session = await stack.runtime.engine.session_for_call(ccid)
        return any(c["type"] == "call.conversation.ended" for c in session.conversation)

    await eventually(conversation_recorded)
    assert len(await stack.submissions()) == 1  # the submission was not touched by the hand-off


async def test_sensitive_values_never_reach_the_logs(stack: Stack) -> None:
    """A call collecting a sensitive PIN logs ids, states and field names, never the PIN."""
    from structlog.testing import capture_logs

    from collector.simulator.script import CallScript

    with capture_logs() as logs:
        script = CallScript.parse(
            {"answers": {"account": "123456", "pin": "9876"}, "keypad": ["1"]}
        )
        ccid = await stack.fake.place_call(to="+13125550002", script=script)
        subs = await eventually(stack.submissions)
        await eventually(lambda: _async(not stack.fake.calls[ccid].alive))
    assert subs[0]["data"]["pin"] == "9876"  # the sink gets the raw value
    assert logs, "the call logged nothing at all"
    assert any(
        entry.get("form") == "secret" and entry.get("call_control_id") == ccid for entry in logs
    )
    assert "9876" not in json.dumps(logs, default=str)


async def test_store_failure_answers_503_and_the_redelivery_is_recorded(stack: Stack) -> None:
    """Store down: 503 (Telnyx redelivers), nothing half-applied; the redelivery succeeds."""
    body = _fixture("call.initiated")
    await stack.runtime.store.close()
    r = await stack.post(body)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "store_unavailable"
    await stack.runtime.store.open()
    r = await stack.post(body)
    assert r.status_code == 200
    ccid = json.loads(body)["data"]["payload"]["call_control_id"]
    session = await stack.runtime.engine.session_for_call(ccid)
    assert session is not None and len(session.event_ids) == 1
