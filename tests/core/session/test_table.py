"""decide.TRANSITIONS is the whole call flow: every (state, event) pair has a row or is
listed as ignored, and the docs name every state the table knows."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from collector.core.forms import load_forms
from collector.core.session import decide as D
from collector.core.session import events as E
from collector.core.session import keypad_steps
from collector.core.session.model import (
    TERMINAL,
    CallInfo,
    ClosingPhase,
    DeadlineKind,
    Gather,
    GatherKind,
    Session,
    State,
)

from .test_decide import Call

ROOT = Path(__file__).resolve().parents[3]


def event_classes() -> set[type[E.Event]]:
    """Every event class there is, however deep, but the Synthetic base (a slotted
    dataclass replaces the class it was made from: only the one its module holds counts)."""
    out: set[type[E.Event]] = set()
    todo = [E.Event]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if getattr(sys.modules[sub.__module__], sub.__qualname__, None) is sub:
                out.add(sub)
    out.discard(E.Synthetic)
    return out


def session_in(state: State, sub: GatherKind | ClosingPhase | None) -> Session:
    s = Session(id="s", form="f", call=CallInfo(call_control_id="c"), started_at=0, updated_at=0)
    s.state = state
    if isinstance(sub, GatherKind):
        s.gather = Gather(kind=sub, attempt=1)
    elif isinstance(sub, ClosingPhase):
        s.closing_phase = sub
    return s


def every_situation() -> list[Session]:
    out = []
    for state in State:
        subs: list[Any] = list(ClosingPhase if state in TERMINAL else GatherKind)
        out.extend(session_in(state, sub) for sub in [None, *subs])
    return out


def every_arrival() -> list[D.On]:
    """What the table is looked up by: each event type, a Timer by its deadline's kind."""
    return [*(c for c in event_classes() if c is not E.Timer), *DeadlineKind]


def ignored(s: Session, on: D.On) -> str | None:
    for where in D.situations(s):
        reason = D.IGNORED.get((where, on))
        if reason is not None:
            return reason
    return None


def test_every_event_class_is_a_webhook_or_synthetic() -> None:
    """A new event class must be one or the other (and so get rows below)."""
    assert event_classes() == set(E.WEBHOOK_EVENTS) | set(E.SYNTHETIC_EVENTS)
    assert not set(E.WEBHOOK_EVENTS) & set(E.SYNTHETIC_EVENTS)


@pytest.mark.parametrize("on", every_arrival(), ids=lambda on: getattr(on, "__name__", on))
def test_every_state_and_event_is_a_row_or_listed_as_ignored(on: D.On) -> None:
    """A new event type (or state, or sub-state) forces a decision: a row, or a reason."""
    undecided = [
        (s.state.value, s.gather.kind.value if s.gather else s.closing_phase)
        for s in every_situation()
        if D.step_for(s, on) is None and ignored(s, on) is None
    ]
    assert undecided == []


def test_no_pair_is_both_a_row_and_ignored() -> None:
    assert not D.TRANSITIONS.keys() & D.IGNORED.keys()
    assert all(on is not E.Timer for _, on in [*D.TRANSITIONS, *D.IGNORED])  # by deadline


def test_the_table_answers_what_a_keypad_end_does_during_the_read_back() -> None:
    """call.gather.ended while the read-back is pending: its 1 or 2."""
    pending = session_in(State.CONFIRMING, GatherKind.CONFIRM)
    assert D.step_for(pending, E.KeypadGatherEnded) is keypad_steps.read_back_answered
    choosing = session_in(State.CONFIRMING, GatherKind.CHOOSE)
    assert D.step_for(choosing, E.KeypadGatherEnded) is keypad_steps.field_chosen
    assert D.step_for(session_in(State.GATHERING, GatherKind.AI), E.KeypadGatherEnded) is None


def test_an_ignored_event_still_counts_as_seen_and_moves_the_timeout() -> None:
    """No row: nothing is sent, but the webhook's id is kept and the silence restarts."""
    forms = load_forms(ROOT / "tests" / "fixtures" / "forms")
    call = Call(forms)
    call.start()
    before = call.session.deadline
    assert before is not None and call.session.state == State.GATHERING
    repeat = call.ev(E.CallAnswered, eid="answered-again")
    d = call.feed(repeat)
    assert d.commands == [] and d.changes == set()
    assert "answered-again" in call.session.event_ids
    assert call.session.deadline is not None and call.session.deadline > before
    assert call.feed(repeat).duplicate


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end >= 0 else len(text)]


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(inspect.getdoc(D) or "", id="decide.py"),
        pytest.param(
            section((ROOT / "README.md").read_text(encoding="utf-8"), "## How a call goes"),
            id="README",
        ),
    ],
)
def test_the_docs_name_every_state_and_sub_state(doc: str) -> None:
    """The theory of operation and the README's "How a call goes" follow the table."""
    words = set(re.findall(r"(?<![.\w])[a-z_]+\b", doc))  # not call.answered's
    assert {s.value for s in State} - words == set()
    assert {p.value for p in ClosingPhase} - words == set()
