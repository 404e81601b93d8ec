"""The x-collector vocabulary: its models, defaults, enums and suggestions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from collector.core.forms import DEFAULT_MESSAGES
from collector.core.forms.vocabulary import (
    FIELD_KEYS,
    FORM_KEYS,
    GATHER_AI_LANGUAGES,
    SPEAK_LANGUAGES,
    AfterOptions,
    ConfirmOptions,
    DtmfOptions,
    FieldOptions,
    FormOptions,
    did_you_mean,
    dtmf_problem,
)


def test_the_vocabulary_is_the_documented_one() -> None:
    """Form and field keys are exactly the ones DESIGN.md lists."""
    assert set(FORM_KEYS) == {
        "greeting",
        "gather_ended_speech",
        "voicemail",
        "voice",
        "voice_settings",
        "language",
        "speak_language",
        "assistant",
        "transcription",
        "interruption_settings",
        "user_response_timeout_ms",
        "max_attempts",
        "confirm",
        "sinks",
        "after",
        "messages",
    }
    assert set(FIELD_KEYS) == {"sensitive", "label", "reask", "max_attempts", "dtmf"}


def test_languages_come_from_the_sdk() -> None:
    """gather_using_ai and speak languages are the SDK's own enums."""
    assert "en" in GATHER_AI_LANGUAGES and "en-US" not in GATHER_AI_LANGUAGES
    assert "en-US" in SPEAK_LANGUAGES and "en" not in SPEAK_LANGUAGES


def test_default_messages_hold_the_server_phrases() -> None:
    """The default English phrases exist, the pinned ones word for word."""
    assert DEFAULT_MESSAGES["goodbye"] == "Thank you, that's everything I needed. Goodbye."
    assert DEFAULT_MESSAGES["no_form"] == (
        "Sorry, this number is not set up to take calls right now. Goodbye."
    )
    assert DEFAULT_MESSAGES["reask_lead_in"] == "Sorry, I need to check one thing."
    assert DEFAULT_MESSAGES["cancelled"] == "This call has been ended by an operator. Goodbye."
    for key in (
        "incomplete_goodbye",
        "confirm_prompt",
        "confirm_invalid",
        "keypad_lead_in",
        "after_goodbye",
    ):
        assert DEFAULT_MESSAGES[key]
    assert all(len(text) <= 3000 for text in DEFAULT_MESSAGES.values())


@pytest.mark.parametrize(
    ("word", "choices", "expected"),
    [
        ("greting", ["greeting", "voice"], " (did you mean 'greeting'?)"),
        ("zzz", ["greeting", "voice"], ""),
        ("en", SPEAK_LANGUAGES, " (did you mean 'en-US'?)"),
        ("fr-FR", GATHER_AI_LANGUAGES, " (did you mean 'fr'?)"),
    ],
)
def test_did_you_mean(word: str, choices: list[str], expected: str) -> None:
    """A close or prefixed choice is suggested; nothing when none is close."""
    assert did_you_mean(word, choices) == expected


def test_confirm_true_means_the_defaults() -> None:
    """`confirm: true` is one correction without choosing a field; false is none."""
    assert FormOptions.model_validate({"confirm": True}).confirm == ConfirmOptions(
        max_corrections=1, choose_field=False
    )
    assert FormOptions.model_validate({"confirm": False}).confirm is None
    assert FormOptions.model_validate({}).confirm is None


def test_form_options_defaults() -> None:
    """An empty x-collector gives max_attempts 2 and all default messages."""
    options = FormOptions()
    assert options.max_attempts == 2
    assert options.messages == DEFAULT_MESSAGES
    assert options.after is None and options.sinks is None


def test_values_are_strict() -> None:
    """Strings are not numbers and numbers are not booleans."""
    with pytest.raises(ValidationError):
        FormOptions.model_validate({"max_attempts": "2"})
    with pytest.raises(ValidationError):
        FieldOptions.model_validate({"sensitive": 1})


def test_unknown_messages_are_refused_by_the_model() -> None:
    """The model itself refuses a message key it does not know."""
    with pytest.raises(ValidationError, match="did you mean 'goodbye'"):
        FormOptions.model_validate({"messages": {"goodbye!": "Bye"}})


def test_sinks_must_name_sinks() -> None:
    """sinks is a non-empty list of distinct, non-empty names."""
    assert FormOptions.model_validate({"sinks": ["jsonl", "crm"]}).sinks == ["jsonl", "crm"]
    for bad in ([], [""], ["a", "a"], "jsonl", [1]):
        with pytest.raises(ValidationError):
            FormOptions.model_validate({"sinks": bad})


def test_after_splits_off_max_seconds() -> None:
    """`after` is the ai_assistant_start body plus our own max_seconds."""
    after = AfterOptions.model_validate({"assistant": {"id": "a1"}, "max_seconds": 90})
    assert after.body == {"assistant": {"id": "a1"}} and after.max_seconds == 90
    with pytest.raises(ValidationError):
        AfterOptions.model_validate({"assistant": {"id": "a1"}, "max_seconds": 0})


def test_dtmf_needs_something_to_play() -> None:
    """A keypad fallback needs a prompt or an audio_url, and sane digit bounds."""
    assert DtmfOptions(prompt="Enter it").maximum_digits is None
    assert DtmfOptions(audio_url="https://example.com/a.mp3").prompt is None
    for bad in (
        {},
        {"prompt": "p", "minimum_digits": 4, "maximum_digits": 2},
        {"prompt": "p", "invalid_audio_url": "https://example.com/b.mp3"},
        {"prompt": "p", "valid_digits": "12a"},
        {"prompt": "p", "terminating_digit": "##"},
    ):
        with pytest.raises(ValidationError):
            DtmfOptions.model_validate(bad)


@pytest.mark.parametrize(
    ("schema", "ok"),
    [
        ({"type": "string", "pattern": "^\\d{5}$"}, True),
        ({"type": "integer", "minimum": 1}, True),
        ({"type": "number"}, True),
        ({"type": ["string", "null"]}, True),
        ({"type": "string", "enum": ["1", "2"]}, True),
        ({"enum": [1, 2, 3]}, True),
        ({"type": "string", "format": "email"}, False),
        ({"type": "string", "format": "date-time"}, False),
        ({"type": "string", "format": "uri"}, False),
        ({"type": "boolean"}, False),
        ({"type": "object"}, False),
        ({"type": "string", "enum": ["yes", "no"]}, False),
        ({"description": "anything"}, False),
    ],
)
def test_dtmf_only_where_digits_fit(schema: dict[str, object], ok: bool) -> None:
    """Keypad digits fit string, integer and number fields, not emails, dates or words."""
    assert (dtmf_problem(schema) is None) is ok
