"""Strict checks of Telnyx command bodies against the SDK's param types."""

from __future__ import annotations

import time

import pytest

from collector.core.telnyx_params import ACTIONS, check_params

STATE = "eyJmbG93IjoiaW50YWtlX3YxIiwic3RlcCI6ImFpX2dhdGhlciIsImF0dGVtcHQiOjF9"
VOICE = "Telnyx.KokoroTTS.af"

GATHER_USING_AI = {
    "parameters": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Caller's full name"},
            "date_of_birth": {
                "type": "string",
                "format": "date",
                "description": "Date of birth, YYYY-MM-DD",
            },
            "email": {"type": "string", "format": "email"},
            "reason_for_call": {"type": "string"},
        },
        "required": ["name", "date_of_birth", "email", "reason_for_call"],
    },
    "greeting": "Hi, thanks for calling Lakeside Clinic.",
    "gather_ended_speech": "Thank you.",
    "voice": VOICE,
    "voice_settings": {"type": "telnyx", "voice_speed": 1.1},
    "language": "en",
    "assistant": {"model": "Qwen/Qwen3-235B-A22B", "instructions": "Be brief."},
    "transcription": {"model": "distil-whisper/distil-large-v2"},
    "interruption_settings": {"enable": True},
    "message_history": [
        {"role": "assistant", "content": "What is your email?"},
        {"role": "user", "content": "maria at example dot com"},
    ],
    "send_partial_results": True,
    "send_message_history_updates": True,
    "user_response_timeout_ms": 10000,
    "client_state": STATE,
    "command_id": "5b0b7f0e-6f8e-4a57-9d0c-6a1a1b2b3c4d",
}

VALID = {
    "answer": {"client_state": STATE, "command_id": "c1", "webhook_url": "https://x.test/hook"},
    "hangup": {"client_state": STATE, "command_id": "c2"},
    "speak": {
        "payload": "Goodbye.",
        "voice": VOICE,
        "payload_type": "text",
        "service_level": "premium",
        "language": "en-US",
        "loop": "infinity",
        "client_state": STATE,
        "command_id": "c3",
    },
    "gather": {
        "minimum_digits": 1,
        "maximum_digits": 8,
        "timeout_millis": 60000,
        "initial_timeout_millis": 5000,
        "inter_digit_timeout_millis": 5000,
        "terminating_digit": "#",
        "valid_digits": "0123456789",
        "gather_id": "dob",
        "command_id": "c4",
    },
    "gather_using_speak": {
        "payload": "Please key in your date of birth.",
        "invalid_payload": "Sorry, try again.",
        "voice": VOICE,
        "language": "en-US",
        "minimum_digits": 8,
        "maximum_digits": 8,
        "maximum_tries": 3,
        "valid_digits": "0123456789",
        "client_state": STATE,
        "command_id": "c5",
    },
    "gather_using_audio": {
        "audio_url": "https://x.test/prompt.mp3",
        "invalid_audio_url": "https://x.test/invalid.mp3",
        "maximum_digits": 4,
        "command_id": "c6",
    },
    "gather_using_ai": GATHER_USING_AI,
    "gather_stop": {"client_state": STATE, "command_id": "c7"},
    "ai_assistant_start": {
        "assistant": {"id": "assistant-123", "dynamic_variables": {"name": "Maria", "age": 38}},
        "greeting": "Hello again.",
        "message_history": [
            {"role": "user", "content": "I need to reschedule."},
            {"role": "assistant", "content": "Sure."},
            {"role": "system", "content": "The caller is Maria."},
        ],
        "send_message_history_updates": True,
        "command_id": "c8",
    },
    "ai_assistant_stop": {"command_id": "c9"},
    "ai_assistant_add_messages": {
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f"}}],
            },
            {"role": "tool", "content": "{}", "tool_call_id": "t1"},
        ],
        "trigger_response": True,
    },
    "client_state_update": {"client_state": STATE},
    "dial": {
        "connection_id": "2287104733592061441",
        "from": "+13125550100",
        "to": "+13125550199",
        "timeout_secs": 30,
        "answering_machine_detection": "disabled",
        "client_state": STATE,
        "command_id": "c10",
    },
}


def test_actions_cover_every_command_the_collector_sends() -> None:
    """ACTIONS names the thirteen commands the collector and the fake know."""
    assert set(VALID) == ACTIONS


@pytest.mark.parametrize("action", sorted(VALID))
def test_valid_bodies_pass(action: str) -> None:
    """A body built from the README's examples has no problems."""
    assert check_params(action, VALID[action]) == []


@pytest.mark.parametrize("action", ["gather_stop", "ai_assistant_stop", "hangup", "answer"])
def test_empty_bodies_pass_where_nothing_is_required(action: str) -> None:
    """The SDK sends `{}` for a command with no fields."""
    assert check_params(action, {}) == []


def test_unknown_top_level_key_is_refused() -> None:
    """A key the SDK does not declare is refused, not dropped."""
    assert check_params("gather_using_ai", {**GATHER_USING_AI, "bogus": 1}) == [
        "/bogus: unknown key"
    ]


def test_unknown_nested_keys_are_refused() -> None:
    """Unknown keys are refused at every level, inside unions and list items too."""
    body = {
        **GATHER_USING_AI,
        "assistant": {"model": "m", "bogus": 1},
        "voice_settings": {"type": "telnyx", "zzz": 2},
        "message_history": [{"role": "user", "content": "hi", "extra": True}],
    }
    assert sorted(check_params("gather_using_ai", body)) == [
        "/assistant/bogus: unknown key",
        "/message_history/0/extra: unknown key",
        "/voice_settings/zzz: unknown key",
    ]


def test_stored_assistant_unknown_key_is_refused() -> None:
    """`assistant` on ai_assistant_start is the stored-assistant object, checked strictly."""
    body = {"assistant": {"id": "a", "bogus": 1}}
    assert check_params("ai_assistant_start", body) == ["/assistant/bogus: unknown key"]


def test_typed_dicts_declared_open_accept_extra_keys() -> None:
    """A TypedDict declared with extra_items (aws voice settings) takes any key."""
    body = {**GATHER_USING_AI, "voice_settings": {"type": "aws", "engine": "neural"}}
    assert check_params("gather_using_ai", body) == []


def test_bad_enum_is_refused() -> None:
    """A value outside a Literal enum is refused with pydantic's wording."""
    problems = check_params("gather_using_ai", {**GATHER_USING_AI, "language": "xx"})
    assert len(problems) == 1
    assert problems[0].startswith("/language: Input should be 'af', 'sq'")


def test_bad_list_item_role_is_refused() -> None:
    """List items are validated eagerly (the SDK types them as lazy Iterables)."""
    body = {**GATHER_USING_AI, "message_history": [{"role": "x", "content": "a"}]}
    assert check_params("gather_using_ai", body) == [
        "/message_history/0/role: Input should be 'assistant' or 'user'"
    ]


def test_unknown_discriminator_names_the_allowed_values() -> None:
    """A union member is chosen by `type`/`role`; an unknown one lists the choices."""
    body = {"messages": [{"role": "robot", "content": "x"}]}
    assert check_params("ai_assistant_add_messages", body) == [
        "/messages/0/role: Input should be 'assistant', 'developer', 'system', 'tool' or 'user'"
    ]


def test_union_member_is_checked_against_its_own_fields() -> None:
    """Once the discriminator picks a member, that member's required keys are enforced."""
    body = {"messages": [{"role": "tool", "content": "{}"}]}
    assert check_params("ai_assistant_add_messages", body) == [
        "/messages/0/tool_call_id: Field required"
    ]


def test_missing_required_key_is_refused() -> None:
    """`speak` without `voice` names the missing key."""
    assert check_params("speak", {"payload": "hi"}) == ["/voice: Field required"]


def test_wrong_type_is_refused_strictly() -> None:
    """Numbers are not accepted as strings, nor strings as numbers or booleans."""
    body = {"minimum_digits": "1", "terminating_digit": 5}
    assert check_params("gather", body) == [
        "/minimum_digits: Input should be a valid integer",
        "/terminating_digit: Input should be a valid string",
    ]
    assert check_params("gather_using_ai", {**GATHER_USING_AI, "send_partial_results": "true"}) == [
        "/send_partial_results: Input should be a valid boolean"
    ]


def test_dial_uses_the_wire_name_from() -> None:
    """`dial` takes `from` on the wire (the SDK's `from_` alias) and refuses `from_`."""
    assert check_params("dial", VALID["dial"]) == []
    body = {k: v for k, v in VALID["dial"].items() if k != "from"}
    assert check_params("dial", {**body, "from_": "+13125550100"}) == [
        "/from_: unknown key",
        "/from: Field required",
    ]


def test_dial_to_may_be_a_list_but_not_a_number() -> None:
    """`to` is a string or a list of strings."""
    assert check_params("dial", {**VALID["dial"], "to": ["+13125550199", "+13125550198"]}) == []
    assert check_params("dial", {**VALID["dial"], "to": 5})[0].startswith("/to: ")


def test_long_greeting_is_refused() -> None:
    """The documented 3,000-character limits are enforced."""
    problems = check_params("gather_using_ai", {**GATHER_USING_AI, "greeting": "x" * 5000})
    assert problems == ["/greeting: at most 3000 characters allowed, got 5000"]
    assert check_params("speak", {"payload": "y" * 3001, "voice": VOICE}) == [
        "/payload: at most 3000 characters allowed, got 3001"
    ]


def test_client_state_must_be_base64() -> None:
    """`client_state` must be valid base64."""
    assert check_params("hangup", {"client_state": "not base64!"}) == [
        "/client_state: must be a valid Base-64 encoded string"
    ]


def test_parameters_must_look_like_a_json_schema_object() -> None:
    """gather_using_ai's `parameters` must be an object schema with properties and no $ref."""
    body = {**GATHER_USING_AI, "parameters": {"type": "string"}}
    assert check_params("gather_using_ai", body) == [
        '/parameters/type: should be "object" (a JSON Schema object)',
        "/parameters/properties: should be an object of field schemas",
    ]
    ref = {
        "type": "object",
        "properties": {"address": {"$ref": "defs/address.json"}},
        "required": ["address"],
    }
    assert check_params("gather_using_ai", {**GATHER_USING_AI, "parameters": ref}) == [
        "/parameters/properties/address/$ref: $ref is not allowed; inline the schema"
    ]


def test_body_must_be_an_object() -> None:
    """A JSON array or string is not a command body."""
    assert check_params("hangup", ["x"]) == ["/: the body should be a JSON object"]  # type: ignore[arg-type]


def test_unknown_action_raises() -> None:
    """Asking about an action the module does not know is a programming error."""
    with pytest.raises(KeyError):
        check_params("transfer", {})


def test_pointers_escape_slashes_and_tildes() -> None:
    """Keys with `/` or `~` are escaped as JSON pointers require."""
    assert check_params("hangup", {"a/b~c": 1}) == ["/a~1b~0c: unknown key"]


def test_checks_are_fast_once_warm() -> None:
    """A full gather_using_ai body checks in well under a millisecond on average."""
    check_params("gather_using_ai", GATHER_USING_AI)
    start = time.perf_counter()
    for _ in range(200):
        check_params("gather_using_ai", GATHER_USING_AI)
    assert (time.perf_counter() - start) / 200 < 0.002
