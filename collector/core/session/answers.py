"""The evidence for each field and the form's verdict on it, as a Turn sees them now."""

from __future__ import annotations

from typing import Any

from collector.core.session import events as E
from collector.core.session.model import FieldState
from collector.core.session.step import Turn


def take_value(t: Turn, name: str, values: dict[str, Any], source: str) -> None:
    """One ask of `name` is over: keep what `values` gives for it, judged by its schema."""
    assert t.form is not None
    spec = t.form.fields[name]
    fs = t.s.fields.get(name) or FieldState(source=source)
    fs.attempts += 1
    if name in values:
        value = values[name]
        problems = (
            [E.TOO_LARGE_PROBLEM] if E.is_too_large(value) else t.form.validate_field(name, value)
        )
        fs.value, fs.has_value, fs.source = value, True, source
        fs.attempt, fs.resumed_from = t.s.attempt, None
    elif fs.valid:
        # Asked again (a correction) but not given: the earlier valid value stands.
        t.s.fields[name] = fs
        return
    else:
        problems = ["is required"] if spec.required else []
    fs.valid = not problems and name in values
    fs.problems = list(problems)
    fs.errors.extend(problems)
    if not fs.valid and not problems:
        fs.source = source  # optional and not given: nothing is wrong
    t.s.fields[name] = fs


def valid_data(t: Turn) -> dict[str, Any]:
    """The answers that passed validation so far."""
    return {name: fs.value for name, fs in t.s.fields.items() if fs.valid}


def required_now(t: Turn) -> dict[str, str]:
    """The fields the form requires given the valid answers, with the rule of each."""
    assert t.form is not None
    return t.form.requirements(valid_data(t))


def apply_rules(t: Turn) -> None:
    """The whole form's verdict on each answer: a root rule (a `then` that bounds a field,
    ...) can reject a value its field's own schema accepts."""
    assert t.form is not None
    for _ in range(len(t.form.fields) + 1):
        changed = False
        for name, problems in t.form.validate(valid_data(t)).items():
            fs = t.s.fields.get(name)
            real = [p for p in problems if p != "is required"]
            if not name or fs is None or not fs.valid or not real:
                continue
            fs.valid, fs.problems = False, real
            fs.errors.extend(real)
            changed = True
        if not changed:
            return


def invalid_fields(t: Turn) -> list[str]:
    """Fields the rules require now without a valid value, and fields given a wrong one."""
    assert t.form is not None
    apply_rules(t)
    required = required_now(t)
    out = []
    for name in t.form.fields:
        fs = t.s.fields.get(name)
        if fs is not None and fs.valid:
            continue
        if name in required or (fs is not None and fs.has_value):
            out.append(name)
    return out
