"""The scripted caller: what a simulated person answers to the voice AI and on the keypad.

`ScriptedCaller` plays one call. For each `gather_using_ai` it builds an `AiGatherPlan`:
one `Turn` per field (the assistant's question, built from the field's title or
description, and the caller's spoken reply), from the call's `CallScript` or, for fields
the script does not cover, from the schema's `examples`. For each keypad gather it picks
the scripted digits. It does no I/O and keeps no clock; the fake Telnyx paces and sends.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.core.forms.choices import choices
from collector.simulator.script import CallScript

__all__ = [
    "MISSING",
    "AiGatherPlan",
    "ScriptedCaller",
    "Turn",
    "example_value",
    "question_for",
    "speak_value",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_ACKS = ("Thanks.", "Got it.", "Thank you.", "Great.")
_SILENT_REPLY = "Sorry, I'd rather not say."
_UNSURE_REPLY = "I'm not sure."
_SPECIAL_KINDS = ("confirm", "choose")


@dataclass(frozen=True, slots=True)
class Turn:
    """One question of the AI and the caller's reply; `value` is MISSING when none given."""

    field: str
    question: str
    reply: str
    value: Any = MISSING

    @property
    def answered(self) -> bool:
        return self.value is not MISSING


@dataclass(frozen=True, slots=True)
class AiGatherPlan:
    """How one AI gather will go, decided when the command arrives."""

    attempt: int
    turns: list[Turn]
    required: list[str]
    hangup_after_answers: int | None = None  # the caller hangs up during this gather
    hangup_after_gather: bool = False  # the caller hangs up once this gather has ended

    def status(self, result: Mapping[str, Any]) -> str:
        return "valid" if all(name in result for name in self.required) else "invalid"


@dataclass(slots=True)
class ScriptedCaller:
    """The simulated person on one call."""

    script: CallScript = field(default_factory=CallScript)
    ai_gathers: int = 0
    keypad_gathers: int = 0
    fields: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    _keypad_used: dict[str, int] = field(default_factory=dict)

    # -- voice ------------------------------------------------------------------------------

    def plan_ai_gather(
        self, parameters: Mapping[str, Any], greeting: str | None = None
    ) -> AiGatherPlan:
        """The questions and answers of the next AI gather over `parameters` (a JSON Schema)."""
        self.ai_gathers += 1
        attempt = self.ai_gathers
        props = parameters.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required_raw = parameters.get("required")
        required = [r for r in required_raw or () if isinstance(r, str) and r in props]
        answers = self.script.answers_for_attempt(attempt)
        silent = set(self.script.silent)
        if self.script.callee == "voicemail":
            silent.update(props)  # a voicemail box asked questions records them, says nothing
        turns: list[Turn] = []
        for name, raw_schema in props.items():
            schema = raw_schema if isinstance(raw_schema, Mapping) else {}
            self.fields[name] = schema
            value = answers[name] if name in answers else example_value(schema)
            if name not in required and (name in silent or value is MISSING):
                continue
            question = question_for(name, schema)
            if not turns:
                if greeting:
                    question = (
                        greeting if greeting.rstrip().endswith("?") else f"{greeting} {question}"
                    )
            else:
                question = f"{_ACKS[(len(turns) - 1) % len(_ACKS)]} {question}"
            if name in silent:
                turns.append(Turn(name, question, _SILENT_REPLY))
            elif value is MISSING:
                turns.append(Turn(name, question, _UNSURE_REPLY))
            else:
                reply = self.script.say.get(name) or speak_value(value, schema)
                turns.append(Turn(name, question, reply, value))
        hangup_after = None
        if attempt == 1 and self.script.hangs_up_during_gather:
            hangup_after = self.script.hangup_after if self.script.hangup_after is not None else 1
        return AiGatherPlan(
            attempt=attempt,
            turns=turns,
            required=required,
            hangup_after_answers=hangup_after,
            hangup_after_gather=attempt == 1 and self.script.hangup == "after_gather",
        )

    # -- keypad -----------------------------------------------------------------------------

    def keypad_entry(self, prompt: str | None, client_state: str | None) -> str | None:
        """The keys pressed for the next keypad gather, or None (the gather times out).

        A read-back confirmation nobody scripted is confirmed with 1, as a satisfied caller
        would; any other unscripted keypad gather times out."""
        self.keypad_gathers += 1
        keypad = self.script.keypad
        state = _decode_state(client_state)
        unscripted = "1" if "confirm" in (state.get("k"), state.get("kind")) else None
        if isinstance(keypad, list):
            index = self.keypad_gathers - 1
            return keypad[index] if index < len(keypad) else unscripted
        key = self._keypad_key(keypad, prompt, client_state)
        if key is None:
            return unscripted
        used = self._keypad_used.get(key, 0)
        self._keypad_used[key] = used + 1
        entry = keypad[key]
        if isinstance(entry, str):
            return entry
        return entry[used] if used < len(entry) else None

    def _keypad_key(
        self, keypad: Mapping[str, Any], prompt: str | None, client_state: str | None
    ) -> str | None:
        state = _decode_state(client_state)
        named = state.get("field")
        if isinstance(named, str) and named in keypad:
            return named
        for k in ("k", "kind", "step"):
            kind = state.get(k)
            if isinstance(kind, str) and kind in keypad:
                return kind
            if isinstance(kind, str) and kind in _SPECIAL_KINDS:
                return None  # a read-back confirmation nobody scripted
        unused = [k for k in keypad if not self._keypad_used.get(k)]
        text = (prompt or "").lower()
        if text:
            best: tuple[int, int, str] | None = None
            for key in keypad:
                for label in self._labels(key):
                    if len(label) >= 3 and label in text:
                        rank = (key in unused, len(label), key)
                        if best is None or rank[:2] > best[:2]:
                            best = (rank[0], rank[1], key)
            if best is not None:
                return best[2]
        return unused[0] if unused else None

    def _labels(self, key: str) -> list[str]:
        schema = self.fields.get(key, {})
        labels = [key.lower(), key.replace("_", " ").lower()]
        for k in ("title", "description"):
            text = schema.get(k)
            if isinstance(text, str) and text.strip():
                labels.append(_clause(text).lower())
        return labels


# -- words --------------------------------------------------------------------------------


def example_value(schema: Mapping[str, Any]) -> Any:
    """What a caller with no script says for a field: its first example, else a default."""
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    fixed = choices(schema)
    if fixed:
        return fixed[0][0]
    return MISSING


def question_for(name: str, schema: Mapping[str, Any]) -> str:
    """A natural question for one field, from its title or description."""
    label = _label(name, schema)
    if label.endswith("?"):
        return label
    kind = schema.get("type")
    fixed = choices(schema)
    if kind == "boolean":
        return f"{label[:1].upper()}{label[1:]}: yes or no?"
    verb = "are" if kind == "array" else "is"
    question = f"What {verb} your {label}?"
    if fixed is not None and 1 < len(fixed) <= 6:
        options = [spoken for _, spoken in fixed]
        question += f" You can say {', '.join(options[:-1])} or {options[-1]}."
    return question


def _label(name: str, schema: Mapping[str, Any]) -> str:
    for key in ("title", "description"):
        text = schema.get(key)
        if isinstance(text, str) and text.strip():
            if text.strip().endswith("?"):
                return text.strip()
            label = _clause(text)
            if 0 < len(label) <= 60:
                return label
    return _lower_first(name.replace("_", " ").strip())


_POSSESSIVE = re.compile(r"^(the\s+)?(caller|customer|patient|user|client|person)'s\s+", re.I)


def _clause(text: str) -> str:
    label = re.split(r"[,;(]|\s-\s|:\s|\.\s", text.strip(), maxsplit=1)[0].strip().rstrip(".")
    label = _POSSESSIVE.sub("", label)
    label = re.sub(r"^(your|the)\s+", "", label, flags=re.I)
    return _lower_first(label)


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[1].isupper():
        return text  # an acronym such as "ZIP code"
    return text[:1].lower() + text[1:]


def speak_value(value: Any, schema: Mapping[str, Any] | None = None) -> str:
    """How a person would say `value` on the phone."""
    text = _spoken(value, schema or {})
    return text if text[-1:] in ".?!" else f"{text}."


def _spoken(value: Any, schema: Mapping[str, Any]) -> str:
    if value is None:
        return "I don't have one"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        fmt = schema.get("format")
        if fmt == "email" and "@" in value:
            return value.replace(".", " dot ").replace("@", " at ").replace("  ", " ")
        if fmt == "date":
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                return value
            return f"{day:%B} {day.day}, {day.year}"
        return value.strip() or "Nothing"
    if isinstance(value, list):
        items = schema.get("items")
        item_schema = items if isinstance(items, Mapping) else {}
        parts = [_spoken(v, item_schema) for v in value]
        if not parts:
            return "None"
        return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    if isinstance(value, Mapping):
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        parts = [_spoken(v, props.get(k) or {}) for k, v in value.items()]
        return ", ".join(p for p in parts if p) or "Nothing"
    return str(value)


def _decode_state(client_state: str | None) -> dict[str, Any]:
    if not client_state:
        return {}
    try:
        decoded = json.loads(base64.b64decode(client_state, validate=True))
    except (binascii.Error, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}
