"""The phrases the server speaks itself, built from the form's `messages`."""

from __future__ import annotations

import re
from datetime import date, time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.forms import Form
    from collector.session.model import FieldState

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WORDS_PER_SECOND = 2.6


def label(form: Form, name: str) -> str:
    """How a field is named out loud: its title, else its name in words."""
    spec = form.fields[name]
    return spec.title or name.replace("_", " ")


def speech_seconds(text: str) -> float:
    """A generous estimate of how long text takes to speak."""
    return 1.5 + len(text.split()) / _WORDS_PER_SECOND


def reask_greeting(
    form: Form, names: list[str], fields: dict[str, FieldState], messages: dict[str, str]
) -> str:
    """ "Sorry, I need to check one thing. That email address seems to be missing the @. ..."."""
    parts = [messages.get("reask_lead_in", "")]
    for name in names:
        spec = form.fields[name]
        state = fields.get(name)
        problems = state.problems if state is not None else []
        what = label(form, name)
        if problems and problems != ["is required"]:
            parts.append(f"The {what} {problems[0]}.")
        ask = spec.options.reask or f"Could you tell me your {what}?"
        if problems == ["is required"] and not spec.options.reask:
            ask = f"I still need your {what}."
        parts.append(ask)
    return " ".join(p for p in parts if p)[:3000]


def keypad_prompt(form: Form, name: str, messages: dict[str, str]) -> str:
    """The keypad prompt of a field (its `dtmf.prompt`), after the lead-in."""
    dtmf = form.fields[name].options.dtmf
    prompt = dtmf.prompt if dtmf is not None and dtmf.prompt else ""
    if not prompt:
        prompt = f"Please enter your {label(form, name)} on your keypad."
    lead = messages.get("keypad_lead_in", "")
    return f"{lead} {prompt}".strip()[:3000]


def spoken(value: Any, schema: dict[str, Any]) -> str:
    """A value as it should be read back: dates and times in words."""
    fmt = schema.get("format")
    if isinstance(value, str) and fmt == "date":
        try:
            d = date.fromisoformat(value)
        except ValueError:
            return value
        return f"{_MONTHS[d.month - 1]} {d.day}, {d.year}"
    if isinstance(value, str) and fmt == "time":
        try:
            t = time.fromisoformat(value.rstrip("Z"))
        except ValueError:
            return value
        hour = t.hour % 12 or 12
        minutes = f":{t.minute:02d}" if t.minute else ""
        return f"{hour}{minutes} {'PM' if t.hour >= 12 else 'AM'}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and re.fullmatch(r"\+?\d{5,}", value):
        return " ".join(value.lstrip("+"))
    return str(value)


def confirm_readback(form: Form, fields: dict[str, FieldState], messages: dict[str, str]) -> str:
    """Read the collected values back (sensitive ones masked) and ask for 1 or 2."""
    items = []
    for name, spec in form.fields.items():
        state = fields.get(name)
        if state is None or not state.valid:
            continue
        value = (
            messages.get("masked", "kept private")
            if spec.options.sensitive
            else spoken(state.value, spec.schema)
        )
        items.append(f"{label(form, name)}: {value}")
    intro = messages.get("confirm_intro", "")
    prompt = messages.get("confirm_prompt", "")
    return f"{intro} {'; '.join(items)}. {prompt}".strip()[:3000]


def coerce_digits(digits: str, schema: dict[str, Any]) -> Any:
    """Keypad digits as the field's type: integer, number, or the string as entered."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    digits = digits.rstrip("#")
    if "integer" in kinds and digits.isdigit():
        return int(digits)
    if "number" in kinds and digits.isdigit():
        return int(digits)
    return digits
