"""Asking the caller: an AI gather, a keypad entry, the read-back, the choice of field.

Each starts a gather (and sets the state it is pending in); the steps that handle its end
live in gather_steps and keypad_steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from collector.core.forms.placeholders import render
from collector.core.session import commands as C
from collector.core.session.answers import invalid_fields, required_now, valid_data
from collector.core.session.finish import finalize
from collector.core.session.model import FieldState, Gather, GatherKind, Message, State
from collector.core.session.step import Turn
from collector.core.session.wording import confirm_readback, keypad_prompt, label

if TYPE_CHECKING:
    from collector.core.forms import Form


def ai_gather_body(
    form: Form,
    parameters: dict[str, Any],
    greeting: str | None = None,
    history: list[dict[str, str]] | None = None,
    variables: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """The gather_using_ai body (without client_state and command_id); with `variables`,
    the form's greeting and gather_ended_speech have their placeholders filled."""
    body: dict[str, Any] = {"parameters": parameters, **form.gather_options()}
    if variables is not None:
        for key in ("greeting", "gather_ended_speech"):
            if isinstance(body.get(key), str):
                body[key] = render(body[key], variables)[:3000]
    if greeting is not None:
        body["greeting"] = greeting
    if history:
        body["message_history"] = history
    body["send_partial_results"] = True
    body["send_message_history_updates"] = True
    return body


def start_ai_gather(
    t: Turn, names: list[str], parameters: dict[str, Any], greeting: str | None
) -> None:
    """A new attempt: gather_using_ai for `names`, with the conversation so far."""
    assert t.form is not None
    t.s.attempt += 1
    t.s.gather = Gather(kind=GatherKind.AI, attempt=t.s.attempt, fields=names)
    t.set_state(State.GATHERING)
    history = [
        {"role": m.role, "content": m.content}
        for m in t.s.transcript
        if m.role in ("assistant", "user") and m.content
    ]
    body = ai_gather_body(t.form, parameters, greeting, history, t.s.variables)
    t.command(C.GATHER_USING_AI, body, kind=GatherKind.AI)
    t.s.gather.seq = t.s.command_seq
    t.change("gather")


def start_first_gather(t: Turn) -> None:
    """The form starts: the first gather asks the form's first fields, but those already
    valid (given in advance, or carried from the call this one resumes); with nothing the
    form needs left to ask, the read-back or the outcome."""
    assert t.form is not None
    form = t.form
    if not any(fs.valid for fs in t.s.fields.values()):
        start_ai_gather(t, form.first_fields, form.parameters, greeting=None)
        return
    missing = invalid_fields(t)  # what the rules require given the answers, or is wrong
    first = set(form.first_fields)
    ask = [
        name
        for name in form.fields
        if not (t.s.fields.get(name) or FieldState()).valid and (name in first or name in missing)
    ]
    required = [name for name in ask if name in missing]
    if not required:
        confirm_or_finish(t)
        return
    parameters = form.sub_parameters(ask, valid_data(t))
    parameters["required"] = required
    start_ai_gather(t, ask, parameters, greeting=None)


def next_keypad_or_finish(t: Turn) -> None:
    """The first wrong field with a keypad fallback not yet used goes to the keypad; with
    none left, a required field still wrong makes the session incomplete."""
    assert t.form is not None
    for name in invalid_fields(t):
        spec = t.form.fields[name]
        fs = t.s.fields.get(name) or FieldState()
        if spec.options.dtmf is not None and fs.source != "keypad":
            start_keypad(t, name)
            return
    invalid = invalid_fields(t)
    required = required_now(t)
    if any(n in required for n in invalid):
        finalize(t, "incomplete")
    else:
        confirm_or_finish(t)


def start_keypad(t: Turn, name: str) -> None:
    assert t.form is not None
    spec = t.form.fields[name]
    dtmf = spec.options.dtmf
    assert dtmf is not None
    t.s.gather = Gather(kind=GatherKind.KEYPAD, attempt=t.s.attempt, fields=[name])
    t.set_state(State.KEYPAD)
    digits: dict[str, Any] = {
        k: v
        for k, v in {
            "minimum_digits": dtmf.minimum_digits,
            "maximum_digits": dtmf.maximum_digits,
            "valid_digits": dtmf.valid_digits,
            "terminating_digit": dtmf.terminating_digit,
            "timeout_millis": dtmf.timeout_millis,
            "inter_digit_timeout_millis": dtmf.inter_digit_timeout_millis,
            "maximum_tries": dtmf.maximum_tries,
        }.items()
        if v is not None
    }
    prompt = keypad_prompt(t.form, name, t.messages)
    if dtmf.audio_url:
        body = {"audio_url": dtmf.audio_url, **digits}
        if dtmf.invalid_audio_url:
            body["invalid_audio_url"] = dtmf.invalid_audio_url
        t.command(C.GATHER_USING_AUDIO, body, kind=GatherKind.KEYPAD)
    else:
        body = {"payload": prompt, **t.voice(), **digits}
        if dtmf.invalid_prompt:
            body["invalid_payload"] = dtmf.invalid_prompt
        t.command(C.GATHER_USING_SPEAK, body, kind=GatherKind.KEYPAD)
    t.s.gather.seq = t.s.command_seq
    t.s.transcript.append(Message(role="assistant", content=prompt, attempt=t.s.attempt))
    t.change("gather", "transcript")


def confirm_or_finish(t: Turn) -> None:
    """With `confirm`, read the values back (1 confirms, 2 corrects); else complete."""
    assert t.form is not None
    confirm = t.form.options.confirm
    if confirm is None:
        finalize(t, "completed")
        return
    t.s.gather = Gather(kind=GatherKind.CONFIRM, attempt=t.s.attempt)
    t.set_state(State.CONFIRMING)
    payload = confirm_readback(t.form, t.s.fields, t.messages)
    body = {
        "payload": payload,
        **t.voice(),
        "minimum_digits": 1,
        "maximum_digits": 1,
        "valid_digits": "12",
        "maximum_tries": 3,
    }
    if t.messages.get("confirm_invalid"):
        body["invalid_payload"] = t.messages["confirm_invalid"]
    t.command(C.GATHER_USING_SPEAK, body, kind=GatherKind.CONFIRM)
    t.s.gather.seq = t.s.command_seq
    t.s.transcript.append(Message(role="assistant", content=payload, attempt=t.s.attempt))
    t.change("gather", "transcript")


def correct(t: Turn, names: list[str]) -> None:
    """Ask again for `names` by voice; a correction is one more chance for each."""
    assert t.form is not None
    for name in names:
        fs = t.s.fields.get(name)
        if fs is not None:
            allowed = t.form.fields[name].attempts_allowed(t.form)
            fs.attempts = min(fs.attempts, allowed - 1)
    greeting = t.messages.get("correct_prompt") or None
    start_ai_gather(t, names, t.form.sub_parameters(names), greeting)


def ask_which_field(t: Turn, names: list[str]) -> None:
    """The menu of fields is spoken, then a plain `gather` takes the caller's choice."""
    assert t.form is not None
    form = t.form
    choices = names[:9]
    option = t.messages.get("choose_option", "To change the {field}, press {digit}.")
    menu = " ".join(
        option.replace("{field}", label(form, name)).replace("{digit}", str(i + 1))
        for i, name in enumerate(choices)
    )
    t.s.gather = Gather(kind=GatherKind.CHOOSE, attempt=t.s.attempt, fields=choices)
    t.command(C.SPEAK, {"payload": menu[:3000], **t.voice()}, kind=GatherKind.CHOOSE)
    t.command(
        C.GATHER,
        {
            "minimum_digits": 1,
            "maximum_digits": 1,
            "valid_digits": "".join(str(i + 1) for i in range(len(choices))),
            "timeout_millis": 15000,
        },
        kind=GatherKind.CHOOSE,
    )
    t.s.gather.seq = t.s.command_seq
    t.s.transcript.append(Message(role="assistant", content=menu, attempt=t.s.attempt))
    t.change("gather", "transcript")
