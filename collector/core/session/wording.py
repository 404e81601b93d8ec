"""The phrases the server speaks itself, built from the form's `messages`."""

from __future__ import annotations

import re
from datetime import date, time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.core.forms import Form
    from collector.core.session.model import FieldState

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


_DETERMINERS = (
    *("your ", "the ", "a ", "an ", "my ", "our ", "this ", "these ", "which ", "what "),
    *("how ", "when ", "where ", "whether ", "why ", "who "),
)


def label(form: Form, name: str) -> str:
    """How a field is named out loud: its `x-collector.label`, else its title in lower
    case (a question's title as "the answer to ..."), else its name in words."""
    spec = form.fields[name]
    if spec.options.label:
        return spec.options.label
    title = (spec.title or "").strip()
    if not title:
        return name.replace("_", " ")
    if len(title) > 1 and not title[:2].isupper():
        title = title[0].lower() + title[1:]
    if title.endswith("?"):
        return f"the answer to {title.rstrip('?').strip()}"
    return title


def _named(form: Form, name: str) -> str:
    """The label as the object of a sentence: "your email address", "the answer to ..."."""
    what = label(form, name)
    return what if what.lower().startswith(_DETERMINERS) else f"your {what}"


def _subject(form: Form, name: str) -> str:
    """The label opening a sentence: "The email address", "Your date of birth"."""
    what = label(form, name)
    if not what.lower().startswith(_DETERMINERS):
        what = f"the {what}"
    return what[0].upper() + what[1:]


def _question(form: Form, name: str) -> str | None:
    title = (form.fields[name].title or "").strip()
    return title if title.endswith("?") and not form.fields[name].options.label else None


def speech_seconds(text: str) -> float:
    """A generous estimate of how long text takes to speak."""
    return 1.5 + len(text.split()) / _WORDS_PER_SECOND


def reask_greeting(
    form: Form, names: list[str], fields: dict[str, FieldState], messages: dict[str, str]
) -> str:
    """ "Sorry, I need to check one thing. The email address seems to be missing the @.
    ..."; for fields not asked before (a rule now requires them), the follow-up lead-in."""
    asked_before = any((fields.get(n) is not None and fields[n].attempts) for n in names)
    lead = "reask_lead_in" if asked_before else "follow_up_lead_in"
    parts = [messages.get(lead, "")]
    for name in names:
        spec = form.fields[name]
        state = fields.get(name)
        problems = state.problems if state is not None and state.attempts else []
        if problems and problems != ["is required"]:
            parts.append(f"{_subject(form, name)} {problems[0]}.")
        ask = (
            spec.options.reask
            or _question(form, name)
            or f"Could you tell me {_named(form, name)}?"
        )
        if problems == ["is required"] and not spec.options.reask:
            ask = _question(form, name) or f"I still need {_named(form, name)}."
        parts.append(ask)
    return " ".join(p for p in parts if p)[:3000]


def keypad_prompt(form: Form, name: str, messages: dict[str, str]) -> str:
    """The keypad prompt of a field (its `dtmf.prompt`), after the lead-in."""
    dtmf = form.fields[name].options.dtmf
    prompt = dtmf.prompt if dtmf is not None and dtmf.prompt else ""
    if not prompt:
        prompt = f"Please enter {_named(form, name)} on your keypad."
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
        what = label(form, name)
        items.append(f"{what[0].upper()}{what[1:]}: {value}")
    intro = messages.get("confirm_intro", "")
    prompt = messages.get("confirm_prompt", "")
    return f"{intro} {'; '.join(items)}. {prompt}".strip()[:3000]


def coerce_digits(digits: str, schema: dict[str, Any]) -> Any:
    """Keypad digits as the field's type: integer, number, or the string as entered."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    digits = digits.rstrip("#")
    # ASCII only ("²".isdigit() is true, int("²") fails), and short enough for int()
    numeric = digits.isascii() and digits.isdigit() and len(digits) <= 128
    if numeric and ("integer" in kinds or "number" in kinds):
        return int(digits)
    return digits
