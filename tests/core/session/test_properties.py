"""Property: any duplication or reordering of a call's webhooks yields one submission."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.core.forms import load_forms
from collector.core.session import events as E
from collector.core.session.decide import Policy, decide
from collector.core.session.model import CallInfo, Session

FORMS = load_forms(Path(__file__).resolve().parents[2] / "fixtures" / "forms")
FORM = FORMS["contact"]
CCID = "v3:prop"
GOOD = {"name": "Maria Gonzalez", "email": "maria@example.com", "age": 36}


def _answered() -> Session:
    s = Session(
        id="s", form="contact", call=CallInfo(call_control_id=CCID), started_at=0, updated_at=0
    )
    for ev in (
        E.CallInitiated(id="i", call_control_id=CCID, at=1),
        E.CallAnswered(id="a", call_control_id=CCID, at=2),
    ):
        s = decide(s, ev, FORM, Policy()).session
    return s


ANSWERED = _answered()


def _gather_events() -> list[E.Event]:
    cs = E.ClientState(session_id="s", kind="ai", attempt=1)
    h1 = [{"role": "assistant", "content": "Name?"}, {"role": "user", "content": "Maria Gonzalez"}]
    h2 = h1 + [
        {"role": "assistant", "content": "Email?"},
        {"role": "user", "content": "maria at example dot com"},
    ]
    common = {"call_control_id": CCID, "at": 10.0}
    return [
        E.AiGatherHistory(id="h1", client_state=cs, message_history=h1, **common),
        E.AiGatherPartial(
            id="p1",
            client_state=cs,
            partial_results={"name": "Maria Gonzalez"},
            message_history=h1,
            **common,
        ),
        E.AiGatherHistory(id="h2", client_state=cs, message_history=h2, **common),
        E.AiGatherPartial(
            id="p2",
            client_state=cs,
            partial_results={"name": "Maria Gonzalez", "email": "maria@example.com"},
            message_history=h2,
            **common,
        ),
        E.AiGatherEnded(
            id="end", client_state=cs, status="valid", result=GOOD, message_history=h2, **common
        ),
        E.ConversationEvent(
            id="conv", event_type="call.conversation.ended", client_state=None, **common
        ),
        E.CallHangup(id="bye", client_state=None, cause="normal_clearing", **common),
    ]


EVENTS = _gather_events()


@settings(max_examples=300, deadline=None)
@given(
    order=st.permutations(range(len(EVENTS))),
    extra=st.lists(st.integers(0, len(EVENTS) - 1), max_size=8),
    data=st.data(),
)
def test_duplicates_and_reordering_yield_one_submission_with_the_same_data(
    order: list[int], extra: list[int], data: Any
) -> None:
    """Whatever the order and however often each webhook comes, one completed submission."""
    sequence = list(order)
    for idx in extra:
        sequence.insert(data.draw(st.integers(0, len(sequence))), idx)
    s = ANSWERED
    submissions = []
    t = 10.0
    for idx in sequence:
        t += 0.5
        ev = EVENTS[idx]
        before = s.model_dump()
        d = decide(
            s,
            type(ev)(**{**{f: getattr(ev, f) for f in ev.__dataclass_fields__}, "at": t}),
            FORM,
            Policy(),
        )
        assert s.model_dump() == before  # decide() never changes the session it was given
        s = d.session
        if d.submission:
            submissions.append(d.submission)
    for _ in range(3):  # let stored deadlines fire, as the shell would
        if s.deadline is None or s.deadline_kind == "timeout":
            break
        d = decide(
            s,
            E.Timer(
                id="~t", call_control_id=CCID, at=s.deadline, kind=s.deadline_kind, due=s.deadline
            ),
            FORM,
            Policy(),
        )
        s = d.session
        if d.submission:
            submissions.append(d.submission)
    assert len(submissions) == 1
    assert submissions[0]["status"] == "completed"
    assert submissions[0]["data"] == GOOD
    assert [m["content"] for m in submissions[0]["transcript"]][:2] == ["Name?", "Maria Gonzalez"]
