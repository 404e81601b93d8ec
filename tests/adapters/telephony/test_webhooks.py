"""The webhook adapter on its own: Ed25519 verification, and parsing Telnyx's bodies (the
project's fixture webhooks) into domain events, with the bounds on every value taken.

tests/web/test_ingress.py holds the same contract as HTTP answers (401, 400, 413, 200);
here are the adapter's own results: which event, which fields, which reason.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.adapters.telephony.webhooks import (
    MAX_JSON_DEPTH,
    MAX_LIST_ITEMS,
    MAX_STRING_CHARS,
    Unhandled,
    parse,
    verify,
)
from collector.core.session import events as E
from collector.core.session.client_state import encode
from collector.errors import PayloadInvalid, SignatureInvalid
from collector.simulator.signing import generate_keypair, sign

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "telnyx"
KEY, PUBLIC = generate_keypair(b"w" * 32)
CCID = "v3:u5Oe3yTnYxQ0mD9gk0h2L7wqZpS8Vb1xR4cN6aJtKfEiHdGsPlWoMy"  # the fixtures' call
TOO_LARGE = E.TOO_LARGE


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def body(name: str, **payload: Any) -> bytes:
    doc = fixture(name)
    doc["data"]["payload"].update(payload)
    return orjson.dumps(doc)


def parsed(name: str, **payload: Any) -> Any:
    event_type, event = parse(body(name, **payload), at=1234.5)
    assert event_type == name
    return event


def deep(levels: int) -> Any:
    """A JSON value of `levels` nested objects."""
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


# -- verification ----------------------------------------------------------------------


def test_a_body_signed_by_telnyxs_key_within_the_window_verifies() -> None:
    raw = body("call.initiated")
    assert verify(raw, sign(raw, KEY), PUBLIC) is None
    assert verify(raw, sign(raw, KEY, int(time.time()) - 290), PUBLIC) is None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda raw: sign(raw, generate_keypair(b"o" * 32)[0]), "does not match"),
        (lambda raw: sign(raw + b" ", KEY), "does not match"),  # signed other bytes
        (lambda raw: sign(raw, KEY, int(time.time()) - 301), "too old or too new"),
        (lambda raw: sign(raw, KEY, int(time.time()) + 301), "too old or too new"),
        (lambda raw: {"telnyx-timestamp": str(int(time.time()))}, "telnyx-signature-ed25519"),
        (lambda raw: {**sign(raw, KEY), "telnyx-timestamp": ""}, "telnyx-timestamp"),
        (lambda raw: {**sign(raw, KEY), "telnyx-timestamp": "soon"}, "timestamp format"),
        (lambda raw: {**sign(raw, KEY), "telnyx-signature-ed25519": "QUJD"}, "64 bytes"),
        (
            lambda raw: {**sign(raw, KEY), "telnyx-signature-ed25519": "not base64!!"},
            "signature format",
        ),
    ],
    ids=[
        "another key",
        "tampered",
        "stale",
        "from the future",
        "no signature",
        "no timestamp",
        "timestamp not a number",
        "short signature",
        "signature not base64",
    ],
)
def test_a_bad_signature_is_refused_with_its_reason(headers: Any, reason: str) -> None:
    raw = body("call.initiated")
    with pytest.raises(SignatureInvalid) as refused:
        verify(raw, headers(raw), PUBLIC)
    assert reason in refused.value.reason
    assert (refused.value.status_code, refused.value.code) == (401, "invalid_signature")


def test_a_body_that_is_not_utf8_is_a_payload_error_not_a_crash() -> None:
    raw = b"\xff\xfe{}"
    with pytest.raises(PayloadInvalid, match="not UTF-8"):
        verify(raw, sign(raw, KEY), PUBLIC)


# -- parsing: each fixture into its event ------------------------------------------------


def test_call_initiated_reads_the_call_and_its_parties() -> None:
    event = parsed("call.initiated")
    assert event == E.CallInitiated(
        id="3b1c9a0e-5d7f-4e2a-9c61-0f8e2d4b7a15",
        call_control_id=CCID,
        at=1234.5,
        occurred_at=fixture("call.initiated")["data"]["occurred_at"],
        client_state=None,
        direction="incoming",
        from_="+13125550143",
        to="+13125550199",
        call_leg_id="8a3f1c2e-0b4d-11f0-9d2a-02420aef0c17",
        call_session_id="8a3efb5c-0b4d-11f0-b61f-02420aef0c17",
        connection_id="2287104733592061441",
    )


def test_ai_gather_events_read_results_status_and_history() -> None:
    partial = parsed("call.ai_gather.partial_results")
    assert isinstance(partial, E.AiGatherPartial)
    assert partial.partial_results == {"name": "Maria Gonzalez", "date_of_birth": "1987-04-12"}
    assert [m["role"] for m in partial.message_history] == ["assistant", "user"] * 2
    ended = parsed("call.ai_gather.ended")
    assert isinstance(ended, E.AiGatherEnded)
    assert ended.status == "valid"
    assert ended.result == fixture("call.ai_gather.ended")["data"]["payload"]["result"]
    assert (
        ended.message_history
        == fixture("call.ai_gather.ended")["data"]["payload"]["message_history"]
    )
    history = parsed("call.ai_gather.message_history_updated")
    assert isinstance(history, E.AiGatherHistory) and history.message_history


def test_the_other_call_events_read_what_decide_uses() -> None:
    assert parsed("call.answered") == E.CallAnswered(
        id="c7e2f4a1-9b3d-4c8e-8f2a-6d1e0b5c3a97",
        call_control_id=CCID,
        at=1234.5,
        occurred_at=fixture("call.answered")["data"]["occurred_at"],
    )
    keypad = parsed("call.gather.ended")
    assert (type(keypad), keypad.digits, keypad.status) == (E.KeypadGatherEnded, "1", "valid")
    speak = parsed("call.speak.ended")
    assert (type(speak), speak.status) == (E.SpeakEnded, "completed")
    hangup = parsed("call.hangup")
    assert (type(hangup), hangup.cause, hangup.source) == (
        E.CallHangup,
        "normal_clearing",
        "caller",
    )


def test_conversation_events_keep_a_small_summary_only() -> None:
    created = parsed("call.conversation.created")
    assert isinstance(created, E.ConversationEvent)
    assert created.event_type == "call.conversation.created"
    assert created.summary == {"conversation_id": "5f0e6c8a-2d7b-4c1e-9a43-7b2f1d0c9e61"}
    ended = parsed("call.conversation.ended")
    assert ended.summary == {
        "conversation_id": "5f0e6c8a-2d7b-4c1e-9a43-7b2f1d0c9e61",
        "duration_sec": 91,
        "llm_model": "Qwen/Qwen3-235B-A22B",
    }  # not the messages, the codecs or the voices
    doc = fixture("call.conversation.ended")
    doc["data"]["event_type"] = "call.conversation_insights.generated"
    doc["data"]["payload"]["results"] = [{"insight_id": "i-1", "result": "Rescheduled."}]
    doc["data"]["payload"]["duration_sec"] = {"not": "a number"}
    _, insights = parse(orjson.dumps(doc), at=1.0)
    assert isinstance(insights, E.ConversationEvent)
    assert insights.summary["insights"] == [{"insight_id": "i-1", "result": "Rescheduled."}]
    assert "duration_sec" not in insights.summary  # a value of the wrong type is left out


def test_our_client_state_comes_back_and_anyone_elses_is_none() -> None:
    ours = E.ClientState(session_id="s-1", kind="ai", attempt=2)
    event = parsed("call.ai_gather.ended", client_state=encode(ours))
    assert event.client_state == ours
    assert parsed("call.ai_gather.ended").client_state is None  # the fixture's is not ours
    for odd in ("not base64!", base64.b64encode(b"[1]").decode(), 17, None):
        assert parsed("call.speak.ended", client_state=odd).client_state is None


def test_an_event_type_we_do_not_act_on_is_unhandled_not_refused() -> None:
    event_type, event = parse(body("call.dtmf.received"))
    assert event_type == "call.dtmf.received"
    assert isinstance(event, Unhandled)
    assert (event.id, event.event_type) == ("2d4f6b8a-0c2e-4a4c-9e6b-8a0c2e4f6a81", event_type)
    # nor does it need a call: nothing of it is read
    raw = orjson.dumps({"data": {"id": "r-1", "event_type": "call.recording.saved", "payload": {}}})
    assert isinstance(parse(raw)[1], Unhandled)


def test_the_receive_time_is_the_callers_or_now() -> None:
    assert parsed("call.answered").at == 1234.5
    before = time.time()
    _, event = parse(body("call.answered"))
    assert before <= event.at <= time.time()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not valid JSON"),
        (b"null", "not a JSON object"),
        (b'{"data": null}', "missing object 'data'"),
        (b'{"data": {"id": "", "event_type": "call.answered", "payload": {}}}', "'data.id'"),
        (b'{"data": {"id": 7, "event_type": "call.answered", "payload": {}}}', "'data.id'"),
        (b'{"data": {"id": "x", "event_type": "", "payload": {}}}', "'data.event_type'"),
        (
            b'{"data": {"id": "x", "event_type": ["call.answered"], "payload": {}}}',
            "'data.event_type'",
        ),
        (b'{"data": {"id": "x", "event_type": "call.answered", "payload": "p"}}', "'data.payload'"),
        (
            b'{"data": {"id": "x", "event_type": "call.answered", "payload": {"call_control_id": ""}}}',
            "'data.payload.call_control_id'",
        ),
        (
            b'{"data": {"id": "x", "event_type": "call.hangup", "payload": {"call_control_id": 5}}}',
            "'data.payload.call_control_id'",
        ),
    ],
)
def test_a_malformed_body_is_refused_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadInvalid) as refused:
        parse(raw)
    assert reason in refused.value.reason
    assert (refused.value.status_code, refused.value.code) == (400, "invalid_payload")


def test_odd_types_where_strings_belong_read_as_nothing() -> None:
    event = parsed("call.initiated", to=["+1"], **{"from": 13125550143}, direction=None)
    assert (event.to, event.from_, event.direction) == ("", "", "incoming")
    assert parsed("call.gather.ended", digits=12, status=None).digits == ""
    assert parsed("call.ai_gather.ended", status=1).status is None
    assert parsed("call.ai_gather.ended", result=["Maria"]).result is None
    assert parsed("call.ai_gather.partial_results", partial_results="Maria").partial_results == {}
    odd_history = ["a line that is not an object", {"role": 1, "content": {"x": 1}}]
    assert parsed(
        "call.ai_gather.message_history_updated", message_history=odd_history
    ).message_history == [{"role": "1", "content": "{'x': 1}"}]
    assert parsed("call.ai_gather.ended", message_history="none").message_history == []


# -- bounds ------------------------------------------------------------------------------


def test_a_gathered_value_past_a_bound_is_too_large_alone() -> None:
    result = {
        "deep": deep(MAX_JSON_DEPTH + 1),
        "at_depth": deep(MAX_JSON_DEPTH),
        "long": "x" * (MAX_STRING_CHARS + 1),
        "at_length": "x" * MAX_STRING_CHARS,
        "many": [1] * (MAX_LIST_ITEMS + 1),
        "at_count": [1] * MAX_LIST_ITEMS,
        "wide": {str(n): n for n in range(MAX_LIST_ITEMS + 1)},
        "name": "Maria Gonzalez",
    }
    for event in (
        parsed("call.ai_gather.ended", result=result),
        parsed("call.ai_gather.partial_results", partial_results=result),
    ):
        values = event.result if isinstance(event, E.AiGatherEnded) else event.partial_results
        assert values == {
            "deep": TOO_LARGE,
            "at_depth": result["at_depth"],
            "long": TOO_LARGE,
            "at_length": result["at_length"],
            "many": TOO_LARGE,
            "at_count": result["at_count"],
            "wide": TOO_LARGE,
            "name": "Maria Gonzalez",
        }
        assert all(E.is_too_large(values[k]) for k in ("deep", "long", "many", "wide"))


def test_a_result_with_too_many_fields_keeps_the_first_and_long_names_are_cut() -> None:
    many = {f"f{n}": n for n in range(MAX_LIST_ITEMS + 5)}
    event = parsed("call.ai_gather.ended", result=many)
    assert list(event.result) == [f"f{n}" for n in range(MAX_LIST_ITEMS)]
    name = "k" * (MAX_STRING_CHARS + 10)
    event = parsed("call.ai_gather.ended", result={name: "v"})
    assert event.result == {"k" * MAX_STRING_CHARS: "v"}


def test_transcript_lines_and_summaries_are_cut_to_the_bounds_never_dropped() -> None:
    lines = [{"role": "user", "content": "y" * (MAX_STRING_CHARS * 2)}] * (MAX_LIST_ITEMS + 3)
    event = parsed("call.ai_gather.message_history_updated", message_history=lines)
    assert len(event.message_history) == MAX_LIST_ITEMS
    assert {len(m["content"]) for m in event.message_history} == {MAX_STRING_CHARS}
    nested_line = [{"role": "user", "content": "hi", "extra": deep(MAX_JSON_DEPTH + 5)}]
    [line] = parsed("call.ai_gather.ended", message_history=nested_line).message_history
    # levels counted from the history list (0): the line is 1, its "extra" 2
    depth, inner = 2, line["extra"]
    while isinstance(inner, dict) and "a" in inner:
        depth, inner = depth + 1, inner["a"]
    assert E.is_too_large(inner) and depth == MAX_JSON_DEPTH

    doc = fixture("call.conversation.ended")
    doc["data"]["event_type"] = "call.conversation_insights.generated"
    doc["data"]["payload"]["results"] = [{"result": "z" * (MAX_STRING_CHARS + 1)}] * (
        MAX_LIST_ITEMS + 1
    )
    doc["data"]["payload"]["llm_model"] = "m" * (MAX_STRING_CHARS + 1)
    _, insights = parse(orjson.dumps(doc), at=1.0)
    assert isinstance(insights, E.ConversationEvent)
    assert len(insights.summary["insights"]) == MAX_LIST_ITEMS
    assert len(insights.summary["insights"][0]["result"]) == MAX_STRING_CHARS
    assert len(insights.summary["llm_model"]) == MAX_STRING_CHARS


def test_strings_read_from_the_payload_are_cut_to_the_bound() -> None:
    long = "9" * (MAX_STRING_CHARS + 100)
    event = parsed("call.initiated", to=long, call_leg_id=long)
    assert len(event.to) == MAX_STRING_CHARS and len(event.call_leg_id) == MAX_STRING_CHARS
    assert len(parsed("call.gather.ended", digits=long).digits) == MAX_STRING_CHARS


# -- outbound calls: the dial's call, who answered ---------------------------------------

OUTBOUND = FIXTURES / "outbound"
OUT_CCID = "v3:Qm7Xk2PzR8tLw4Nc1Vb6Yh9Gd3Sa5Fe0Jr_outbound"  # the outbound fixtures' call


def outbound(name: str, **payload: Any) -> tuple[str, Any]:
    doc = json.loads((OUTBOUND / f"{name}.json").read_text())
    doc["data"]["payload"].update(payload)
    return parse(orjson.dumps(doc), at=99.0)


def test_every_outbound_fixture_is_a_webhook_the_sdk_reads() -> None:
    """The copied examples (and the ones derived from them) validate as the SDK's models."""
    import telnyx.types as T

    models = {
        "call.initiated": T.CallInitiatedWebhookEvent,
        "call.answered": T.CallAnsweredWebhookEvent,
        "call.hangup": T.CallHangupWebhookEvent,
        "call.machine.detection.ended": T.CallMachineDetectionEndedWebhookEvent,
        "call.machine.greeting.ended": T.CallMachineGreetingEndedWebhookEvent,
        "call.machine.premium.detection.ended": T.CallMachinePremiumDetectionEndedWebhookEvent,
        "call.machine.premium.greeting.ended": T.CallMachinePremiumGreetingEndedWebhookEvent,
    }
    files = sorted(OUTBOUND.glob("*.json"))
    assert len(files) == 10
    for path in files:
        doc = json.loads(path.read_text())
        models[doc["data"]["event_type"]].model_validate(doc)
        assert not isinstance(parse(path.read_bytes())[1], Unhandled), path.name


def test_an_outbound_call_initiated_says_outgoing_and_reads_the_call() -> None:
    mine = encode(E.ClientState(session_id="sess-out", kind="dial"))
    event_type, event = outbound("1.call.initiated", client_state=mine)
    assert event_type == "call.initiated"
    assert isinstance(event, E.CallInitiated)
    assert (event.direction, event.from_, event.to) == ("outgoing", "+13125550100", "+13125550188")
    assert event.call_control_id == OUT_CCID
    assert event.call_session_id == "c41d5a2e-0b51-11f0-a7b4-02420aef0c17"
    assert event.client_state == E.ClientState(session_id="sess-out", kind="dial")
    _, answered = outbound("2.call.answered")
    assert isinstance(answered, E.CallAnswered) and answered.client_state is None  # not ours


@pytest.mark.parametrize(
    ("name", "event_type", "premium", "result", "answered_by"),
    [
        (
            "3.call.machine.detection.ended",
            "call.machine.detection.ended",
            False,
            "machine",
            "machine",
        ),
        (
            "premium.call.machine.premium.detection.ended",
            "call.machine.premium.detection.ended",
            True,
            "human_residence",
            "human",
        ),
    ],
)
def test_machine_detection_reads_its_result_standard_or_premium(
    name: str, event_type: str, premium: bool, result: str, answered_by: str
) -> None:
    got_type, event = outbound(name)
    assert got_type == event_type
    assert isinstance(event, E.MachineDetectionEnded)
    assert (event.result, event.premium, event.answered_by) == (result, premium, answered_by)
    assert (event.call_control_id, event.at) == (OUT_CCID, 99.0)


@pytest.mark.parametrize(
    ("raw", "answered_by"),
    [
        ("human", "human"),
        ("human_business", "human"),
        ("machine", "machine"),
        ("fax_detected", "fax"),
        ("silence", "not_sure"),
        ("not_sure", "not_sure"),
        ("something_new", "not_sure"),
        (None, "not_sure"),
        (7, "not_sure"),
    ],
)
def test_every_detection_result_maps_onto_one_vocabulary(raw: Any, answered_by: str) -> None:
    _, event = outbound("3.call.machine.detection.ended", result=raw)
    assert event.answered_by == answered_by
    assert event.result == (raw if isinstance(raw, str) else None)


def test_the_machine_greeting_end_reads_its_result_standard_or_premium() -> None:
    event_type, event = outbound("4.call.machine.greeting.ended")
    assert event_type == "call.machine.greeting.ended"
    assert isinstance(event, E.MachineGreetingEnded)
    assert (event.result, event.premium) == ("ended", False)
    event_type, event = outbound("premium.call.machine.premium.greeting.ended")
    assert event_type == "call.machine.premium.greeting.ended"
    assert (type(event), event.result, event.premium) == (
        E.MachineGreetingEnded,
        "beep_detected",
        True,
    )
    _, long = outbound("4.call.machine.greeting.ended", result="x" * (MAX_STRING_CHARS + 5))
    assert long.result == "x" * MAX_STRING_CHARS


@pytest.mark.parametrize(
    ("name", "cause", "source"),
    [
        ("5.call.hangup", "normal_clearing", "caller"),
        ("busy.call.hangup", "user_busy", "callee"),
        ("no_answer.call.hangup", "timeout", "unknown"),
        ("rejected.call.hangup", "call_rejected", "callee"),
    ],
)
def test_an_outbound_hangup_says_why(name: str, cause: str, source: str) -> None:
    _, event = outbound(name)
    assert isinstance(event, E.CallHangup)
    assert (event.cause, event.source) == (cause, source)
