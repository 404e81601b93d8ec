"""Steps of the AI gather: answer the call, start the form's gather, follow its webhooks,
judge its result (re-ask, follow-up, keypad, read-back or finalize)."""

from __future__ import annotations

from typing import Any

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.answers import invalid_fields, take_value, valid_data
from collector.core.session.asks import (
    confirm_or_finish,
    next_keypad_or_finish,
    start_ai_gather,
    start_first_gather,
)
from collector.core.session.finish import closing_speech, finalize
from collector.core.session.model import FieldState, GatherKind, Message, State
from collector.core.session.step import Turn
from collector.core.session.wording import reask_greeting


def answer(t: Turn, ev: E.CallInitiated) -> None:
    """An incoming call is answered (once: a repeated call.initiated sends nothing)."""
    if not t.s.command_seq and ev.direction == "incoming":
        t.command(C.ANSWER, kind="answer")


def start_form(t: Turn, ev: E.CallAnswered) -> None:
    """The first gather_using_ai asks the form's fields; without a form, the call fails."""
    t.set_state(State.ANSWERED)
    if t.form is None:
        t.set_state(State.FAILED)
        t.s.outcome = "failed"
        t.s.ended_at = t.at
        closing_speech(t, t.messages.get("no_form", ""))
        return
    start_first_gather(t)


def record_transcript(t: Turn, ev: E.AiGatherPartial | E.AiGatherHistory | E.AiGatherEnded) -> None:
    """Keep the conversation of the attempt the webhook belongs to, in any state."""
    _record_history(t, ev, ev.message_history)


def take_partial(t: Turn, ev: E.AiGatherPartial) -> None:
    """Partial results of the running attempt fill the live view (`partial`)."""
    _record_history(t, ev, ev.message_history)
    if not _current_ai_attempt(t, ev):
        return
    asked = set(t.s.gather.fields) if t.s.gather else set()
    for key, value in ev.partial_results.items():
        if key in asked and t.s.partial.get(key) != value:
            t.s.partial[key] = value
            t.change("partial")


def judge_gather(t: Turn, ev: E.AiGatherEnded) -> None:
    """The running attempt's result, validated here: everything valid goes to the read-back
    (or completes); wrong fields under max_attempts are asked again in one gather, with
    the fields a rule now requires (a follow-up); then the keypad; then incomplete."""
    if not _take_result(t, ev):
        return
    assert t.form is not None
    invalid = invalid_fields(t)
    if not invalid:
        confirm_or_finish(t)
        return
    again = [
        n
        for n in invalid
        if (t.s.fields.get(n) or FieldState()).attempts < t.form.fields[n].attempts_allowed(t.form)
    ]
    if again:
        greeting = reask_greeting(t.form, again, t.s.fields, t.messages)
        start_ai_gather(t, again, t.form.sub_parameters(again, valid_data(t)), greeting)
        return
    next_keypad_or_finish(t)


def late_result(t: Turn, ev: E.AiGatherEnded) -> None:
    """The result arrived after the hangup, within the grace window: it is final."""
    if _take_result(t, ev):
        finalize(t, "completed" if not invalid_fields(t) else "abandoned")


def stale_end(t: Turn, ev: E.AiGatherEnded) -> None:
    """The end of a gather that no longer runs: only its conversation is kept."""
    _record_history(t, ev, ev.message_history)
    t.note("stale_ai_gather_ended", attempt=_attempt_of(t, ev))


def _take_result(t: Turn, ev: E.AiGatherEnded) -> bool:
    """Take the values of the running attempt (its partials, then its result); False
    (noted as stale) if the webhook belongs to another attempt."""
    _record_history(t, ev, ev.message_history)
    if t.form is None or not _current_ai_attempt(t, ev):
        t.note("stale_ai_gather_ended", attempt=_attempt_of(t, ev))
        return False
    gather = t.s.gather
    assert gather is not None
    values = {k: v for k, v in t.s.partial.items() if k in gather.fields}
    if isinstance(ev.result, dict):
        values.update({k: v for k, v in ev.result.items() if k in gather.fields})
    t.s.gather = None
    t.s.partial = {}
    for name in gather.fields:
        take_value(t, name, values, source="ai")
    t.change("fields", "gather")
    return True


def _current_ai_attempt(t: Turn, ev: E.Event) -> bool:
    """Whether an AI-gather webhook belongs to the gather that is running now."""
    g = t.s.gather
    if g is None or g.kind != GatherKind.AI:
        return False
    cs = ev.client_state
    if cs is None:
        return True  # a webhook without client_state still reaches its session
    if cs.session_id != t.s.id:
        return False
    return cs.attempt in (0, g.attempt)


def _attempt_of(t: Turn, ev: E.Event) -> int:
    cs = ev.client_state
    if cs is not None and cs.session_id == t.s.id and cs.attempt:
        return cs.attempt
    return t.s.gather.attempt if t.s.gather else t.s.attempt


def _history_line(item: Any) -> tuple[str, str] | None:
    """(role, content) of a message_history item: a null or missing role or content is
    empty, never the word "None"; an item with neither is dropped."""
    if not isinstance(item, dict):
        return None
    role, content = item.get("role"), item.get("content")
    role = role if isinstance(role, str) else ""
    content = content if isinstance(content, str) else ""
    return (role, content) if role or content else None


def _record_history(t: Turn, ev: E.Event, history: list[dict[str, Any]]) -> None:
    """Keep the longest snapshot per attempt, without the prefix we sent ourselves."""
    if not history:
        return
    attempt = _attempt_of(t, ev)
    earlier = [m for m in t.s.transcript if m.attempt < attempt]
    prefix = [(m.role, m.content) for m in earlier]
    lines = [line for line in map(_history_line, history) if line is not None]
    if prefix and lines[: len(prefix)] == prefix:
        lines = lines[len(prefix) :]
    current = [m for m in t.s.transcript if m.attempt == attempt]
    if len(lines) < len(current):
        return
    later = [m for m in t.s.transcript if m.attempt > attempt]
    # a line already held as it is keeps its Message (they are never changed in place)
    fresh = [
        current[i]
        if i < len(current) and current[i].role == r and current[i].content == c
        else Message(role=r, content=c, attempt=attempt)
        for i, (r, c) in enumerate(lines)
    ]
    t.s.transcript = earlier + fresh + later
    t.change("transcript")
