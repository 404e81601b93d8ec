"""Steps on the end of a keypad gather (call.gather.ended): a field's digits, the
read-back's 1 or 2, the choice of the field to correct."""

from __future__ import annotations

from collector.core.session import events as E
from collector.core.session.answers import take_value
from collector.core.session.asks import ask_which_field, correct, next_keypad_or_finish
from collector.core.session.finish import finalize
from collector.core.session.model import FieldState, Message
from collector.core.session.step import Turn
from collector.core.session.wording import coerce_digits


def keypad_entry(t: Turn, ev: E.KeypadGatherEnded) -> None:
    """A field's digits, coerced to its type and validated; then the next keypad field,
    the read-back, or the end."""
    if not _ours(t, ev):
        return
    assert t.form is not None and t.s.gather is not None
    name = t.s.gather.fields[0]
    t.s.gather = None
    fs = t.s.fields.get(name) or FieldState()
    fs.source = "keypad"
    t.s.fields[name] = fs
    _keypad_line(t, ev.digits)
    if ev.status == "valid" and ev.digits:
        value = coerce_digits(ev.digits, t.form.fields[name].schema)
        take_value(t, name, {name: value}, source="keypad")
    else:
        problem = "no digits were entered" if ev.status == "timeout" else "keypad entry was invalid"
        fs.attempts += 1
        fs.problems = [problem]
        fs.errors.append(problem)
    t.change("fields", "gather")
    next_keypad_or_finish(t)


def read_back_answered(t: Turn, ev: E.KeypadGatherEnded) -> None:
    """2 (with corrections left) asks again: the fields chosen, or all of them by voice;
    1 confirms every valid field; anything else completes with what was collected."""
    if not _ours(t, ev):
        return
    assert t.form is not None
    t.s.gather = None
    _keypad_line(t, ev.digits)
    confirm = t.form.options.confirm
    assert confirm is not None
    wants_change = ev.status == "valid" and ev.digits.startswith("2")
    if wants_change and t.s.corrections < confirm.max_corrections:
        t.s.corrections += 1
        names = [n for n in t.form.fields if n in t.s.fields]
        if confirm.choose_field and len(names) > 1:
            ask_which_field(t, names)
        else:
            correct(t, names)
        return
    if ev.status == "valid" and ev.digits.startswith("1"):
        for fs in t.s.fields.values():
            if fs.valid:
                fs.source = "confirmed"
        t.change("fields")
    finalize(t, "completed")


def field_chosen(t: Turn, ev: E.KeypadGatherEnded) -> None:
    """The digit of a listed field asks for it again; no choice completes as it stands."""
    if not _ours(t, ev):
        return
    g = t.s.gather
    assert g is not None
    t.s.gather = None
    _keypad_line(t, ev.digits)
    digit = ev.digits[:1]
    if (
        ev.status == "valid"
        and digit.isascii()
        and digit.isdigit()
        and 1 <= int(digit) <= len(g.fields)
    ):
        correct(t, [g.fields[int(digit) - 1]])
        return
    finalize(t, "completed")


def _ours(t: Turn, ev: E.KeypadGatherEnded) -> bool:
    """Whether the webhook ends the pending gather. A caller hanging up during it ends the
    session (abandoned) and the step goes no further."""
    g = t.s.gather
    assert g is not None
    cs = ev.client_state
    if cs is not None and cs.session_id == t.s.id and cs.kind not in ("", g.kind):
        return False  # the end of an earlier gather of another kind
    if ev.status == "call_hangup":
        t.s.call_alive = False
        t.s.gather = None
        finalize(t, "abandoned")
        return False
    return True


def _keypad_line(t: Turn, digits: str) -> None:
    if digits:
        t.s.transcript.append(
            Message(role="user", content=f"[keypad] {digits}", attempt=t.s.attempt)
        )
        t.change("transcript")
