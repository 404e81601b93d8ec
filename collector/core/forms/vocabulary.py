"""The `x-collector` vocabulary: what a form and its fields may say, as pydantic models.

Unknown keys are caught before the models see them (so the loader can suggest the key
that was meant); the models check the values and fill the defaults.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from telnyx.types.calls.action_speak_params import ActionSpeakParams
from telnyx.types.calls.google_transcription_language import GoogleTranscriptionLanguage

from collector.core.forms.choices import choices
from collector.core.forms.messages import DEFAULT_MESSAGES
from collector.core.forms.placeholders import problem as placeholder_problem

KEYWORD = "x-collector"
MAX_SPEECH_CHARS = 3000

GATHER_AI_LANGUAGES: tuple[str, ...] = get_args(GoogleTranscriptionLanguage)
SPEAK_LANGUAGES: tuple[str, ...] = get_args(get_type_hints(ActionSpeakParams)["language"])

# gather_using_ai's own keys, passed through from the form's x-collector as they are.
GATHER_OPTION_KEYS: tuple[str, ...] = (
    "greeting",
    "gather_ended_speech",
    "voice",
    "voice_settings",
    "language",
    "assistant",
    "transcription",
    "interruption_settings",
    "user_response_timeout_ms",
)
# The texts that may hold `{name}` placeholders, filled from a session's variables: the
# form's own, and the closing messages.
VARIABLE_TEXTS: tuple[str, ...] = ("greeting", "gather_ended_speech", "voicemail")
VARIABLE_MESSAGES: tuple[str, ...] = ("goodbye", "incomplete_goodbye", "cancelled")
# Of those, the objects checked against the SDK's gather_using_ai param types.
GATHER_OBJECT_KEYS: tuple[str, ...] = (
    "voice_settings",
    "assistant",
    "transcription",
    "interruption_settings",
)

Speech = Annotated[str, Field(max_length=MAX_SPEECH_CHARS)]
NonEmpty = Annotated[str, Field(min_length=1)]
Positive = Annotated[int, Field(ge=1)]
Digits = Annotated[int, Field(ge=1, le=128)]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when a choice is close to word, else ``."""
    choices = list(choices)
    prefixed = sorted(
        (c for c in choices if c.lower().startswith(word.lower() + "-")),
        key=lambda c: (not c.endswith("-US"), c),
    )
    close = prefixed or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close and "-" in word:
        head = word.split("-", 1)[0].lower()
        close = [c for c in choices if c.lower() == head]
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Options(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class DtmfOptions(_Options):
    """A field's keypad fallback: the gather_using_speak / gather_using_audio settings."""

    prompt: Speech | None = None
    invalid_prompt: Speech | None = None
    audio_url: NonEmpty | None = None
    invalid_audio_url: NonEmpty | None = None
    minimum_digits: Digits | None = None
    maximum_digits: Digits | None = None
    valid_digits: Annotated[str, Field(pattern=r"^[0-9#*]+$")] | None = None
    terminating_digit: Annotated[str, Field(pattern=r"^[0-9#*]?$")] | None = None
    timeout_millis: Positive | None = None
    inter_digit_timeout_millis: Positive | None = None
    maximum_tries: Positive | None = None

    @model_validator(mode="after")
    def _coherent(self) -> DtmfOptions:
        if not self.prompt and not self.audio_url:
            raise ValueError("needs a 'prompt' (spoken) or an 'audio_url' (played)")
        if self.invalid_audio_url and not self.audio_url:
            raise ValueError("'invalid_audio_url' needs an 'audio_url'")
        if (
            self.minimum_digits is not None
            and self.maximum_digits is not None
            and self.minimum_digits > self.maximum_digits
        ):
            raise ValueError("'minimum_digits' is larger than 'maximum_digits'")
        return self


class FieldOptions(_Options):
    """A top-level field's x-collector."""

    sensitive: bool = False
    label: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    reask: Speech | None = None
    max_attempts: Positive | None = None
    dtmf: DtmfOptions | None = None


class ConfirmOptions(_Options):
    """The keypad read-back before finishing; `true` in a form means the defaults."""

    max_corrections: Annotated[int, Field(ge=0)] = 1
    choose_field: bool = False


class AfterOptions(_Options):
    """The hand-off after the form: an ai_assistant_start body, plus our `max_seconds`."""

    body: dict[str, Any]
    max_seconds: Positive | None = None

    @model_validator(mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, dict) and "body" not in value:
            body = {k: v for k, v in value.items() if k != "max_seconds"}
            split = {"body": body}
            if "max_seconds" in value:
                split["max_seconds"] = value["max_seconds"]
            return split
        return value


class FormOptions(_Options):
    """A form's x-collector, defaults filled (`messages` already merged over the defaults)."""

    greeting: Speech | None = None
    gather_ended_speech: Speech | None = None
    voicemail: Speech | None = None  # left on an answering machine (outbound calls)
    voice: NonEmpty | None = None
    voice_settings: dict[str, Any] | None = None
    language: str | None = None
    speak_language: str | None = None
    assistant: dict[str, Any] | None = None
    transcription: dict[str, Any] | None = None
    interruption_settings: dict[str, Any] | None = None
    user_response_timeout_ms: Positive | None = None
    max_attempts: Positive = 2
    confirm: ConfirmOptions | None = None
    sinks: list[NonEmpty] | None = None
    after: AfterOptions | None = None
    messages: dict[str, Speech] = Field(default_factory=lambda: dict(DEFAULT_MESSAGES))

    @field_validator(*VARIABLE_TEXTS)
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        wrong = placeholder_problem(value) if value is not None else None
        if wrong:
            raise ValueError(wrong)
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and value not in GATHER_AI_LANGUAGES:
            hint = did_you_mean(value, GATHER_AI_LANGUAGES) or " (e.g. en, es, fr, de)"
            raise ValueError(f"'{value}' is not a gather_using_ai language{hint}")
        return value

    @field_validator("speak_language")
    @classmethod
    def _speak_language(cls, value: str | None) -> str | None:
        if value is not None and value not in SPEAK_LANGUAGES:
            hint = did_you_mean(value, SPEAK_LANGUAGES) or " (e.g. en-US, es-ES, fr-FR)"
            raise ValueError(f"'{value}' is not a speak language{hint}")
        return value

    @field_validator("confirm", mode="before")
    @classmethod
    def _confirm(cls, value: Any) -> Any:
        if value is True:
            return ConfirmOptions()
        if value is False or value is None:
            return None
        if not isinstance(value, dict | ConfirmOptions):
            raise ValueError('must be true, false or an object like {"max_corrections": 1}')
        return value

    @field_validator("sinks")
    @classmethod
    def _sinks(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("names no sink (leave 'sinks' out to use every sink)")
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(f"names {', '.join(repr(n) for n in twice)} more than once")
        return value

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        unknown = [key for key in value if key not in DEFAULT_MESSAGES]
        if unknown:
            key = unknown[0]
            raise ValueError(f"unknown message '{key}'{did_you_mean(key, DEFAULT_MESSAGES)}")
        for key in VARIABLE_MESSAGES:
            text = value.get(key)
            wrong = placeholder_problem(text) if isinstance(text, str) else None
            if wrong:
                raise ValueError(f"message '{key}' {wrong}")
        return {**DEFAULT_MESSAGES, **value}


FORM_KEYS: frozenset[str] = frozenset(FormOptions.model_fields)
FIELD_KEYS: frozenset[str] = frozenset(FieldOptions.model_fields)
DTMF_KEYS: frozenset[str] = frozenset(DtmfOptions.model_fields)
CONFIRM_KEYS: frozenset[str] = frozenset(ConfirmOptions.model_fields)

# Keypad digits can never make a valid value of these formats.
NOT_DIGITS_FORMATS: frozenset[str] = frozenset(
    {
        "email",
        "idn-email",
        "date",
        "date-time",
        "time",
        "duration",
        "uri",
        "iri",
        "uuid",
        "ipv4",
        "ipv6",
    }
)
DIGIT_TYPES: frozenset[str] = frozenset({"string", "integer", "number"})


def unknown_key(
    key: str, known: Iterable[str], elsewhere: dict[str, str] | None = None, label: str = "key"
) -> str:
    """The message for an unknown key, with a did-you-mean or where the key belongs."""
    if elsewhere and key in elsewhere:
        return f"unknown {label} '{key}' here ({elsewhere[key]})"
    return f"unknown {label} '{key}'{did_you_mean(key, sorted(known))}"


def dtmf_problem(schema: Any) -> str | None:
    """Why a field with this (inlined) schema cannot take keypad digits, or None."""
    if not isinstance(schema, dict):
        return "needs a field described by a schema object"
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if isinstance(kinds, list):
        usable = [k for k in kinds if k in DIGIT_TYPES]
        if not usable:
            return (
                f"a {'/'.join(str(k) for k in kinds)} field cannot be typed on a keypad "
                "(only string, integer and number fields can)"
            )
    elif choices(schema) is None:
        return "needs a field with a type (string, integer or number)"
    fmt = schema.get("format")
    if fmt in NOT_DIGITS_FORMATS:
        return f"keypad digits can never be a valid {fmt}"
    fixed = choices(schema)
    if fixed is not None:
        for choice, _ in fixed:
            if isinstance(choice, bool) or not (
                isinstance(choice, int)
                or (isinstance(choice, str) and choice.isascii() and choice.isdigit())
            ):
                return f"the choice {choice!r} cannot be typed on a keypad (digits only)"
    return None
