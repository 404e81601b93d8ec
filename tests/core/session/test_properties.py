"""Property: any duplication or reordering of a call's webhooks yields one submission
(an inbound call, and outbound calls answered by a person, a machine, or busy)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.core.forms import load_forms
from collector.core.session import events as E
from collector.core.session.decide import Policy, decide
from collector.core.session.model import CallInfo, Session

from .outbound_kit import CCID as OUT_CCID
from .outbound_kit import GOOD as OUT_GOOD
from .outbound_kit import POLICY as OUT_POLICY
from .outbound_kit import SID as OUT_SID
from .outbound_kit import Dialled, outbound_forms

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


# -- outbound calls ----------------------------------------------------------------------

OUT_FORM = outbound_forms(Path(tempfile.mkdtemp(prefix="collector-props-")) / "forms")["warranty"]


def _out(cls: type[E.Event], eid: str, **kw: Any) -> E.Event:
    kw.setdefault("client_state", E.ClientState(session_id=OUT_SID, kind="dial"))
    return cls(id=eid, call_control_id=OUT_CCID, at=0.0, **kw)


def _person_phases() -> list[list[E.Event]]:
    cs = E.ClientState(session_id=OUT_SID, kind="ai", attempt=1)
    history = [{"role": "assistant", "content": "Hi Maria"}, {"role": "user", "content": "Hi"}]
    return [
        [
            _out(E.CallInitiated, "o-init", direction="outgoing", call_session_id="cs-out"),
            _out(E.CallAnswered, "o-ans"),
            _out(E.MachineDetectionEnded, "o-amd", result="human"),
        ],
        [
            _out(E.AiGatherHistory, "o-h", client_state=cs, message_history=history),
            _out(E.AiGatherPartial, "o-p", client_state=cs, partial_results={"name": "Maria G"}),
            _out(
                E.AiGatherEnded,
                "o-end",
                client_state=cs,
                status="valid",
                result=OUT_GOOD,
                message_history=history,
            ),
            _out(E.CallHangup, "o-bye", cause="normal_clearing"),
        ],
    ]


def _machine_phases() -> list[list[E.Event]]:
    return [
        [
            _out(E.CallInitiated, "m-init", direction="outgoing"),
            _out(E.CallAnswered, "m-ans"),
            _out(E.MachineDetectionEnded, "m-amd", result="machine"),
            _out(E.MachineGreetingEnded, "m-greet", result="beep_detected"),
        ],
        [_out(E.SpeakEnded, "m-spoken", status="completed"), _out(E.CallHangup, "m-bye")],
    ]


def _busy_phases() -> list[list[E.Event]]:
    return [
        [
            _out(E.CallInitiated, "b-init", direction="outgoing"),
            _out(E.CallHangup, "b-bye", cause="user_busy", source="callee"),
        ]
    ]


def _shuffled(data: Any, phases: list[list[E.Event]]) -> list[E.Event]:
    """Each phase in any order (a phase's webhooks follow the commands the one before led
    to), and any webhook repeated anywhere after its first delivery."""
    sequence: list[E.Event] = []
    for phase in phases:
        sequence.extend(data.draw(st.permutations(phase)))
    for _ in range(data.draw(st.integers(0, 6))):
        first = data.draw(st.integers(0, len(sequence) - 1))
        sequence.insert(data.draw(st.integers(first + 1, len(sequence))), sequence[first])
    return sequence


def _run_outbound(sequence: list[E.Event]) -> tuple[list[Any], list[Any]]:
    call = Dialled(OUT_FORM, policy=OUT_POLICY)
    t = call.t
    for ev in sequence:
        t += 0.5
        fields = {f: getattr(ev, f) for f in ev.__dataclass_fields__}
        before = call.session.model_dump()
        d = decide(call.session, type(ev)(**{**fields, "at": t}), call.form, OUT_POLICY)
        assert call.session.model_dump() == before  # decide() never changes its input
        call.keep(d)
    for _ in range(3):  # let stored deadlines fire, as the shell would
        if call.session.deadline is None or call.session.deadline_kind == "timeout":
            break
        call.fire()
    return call.submissions, call.commands


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_an_outbound_call_answered_by_a_person_yields_one_submission(data: Any) -> None:
    submissions, commands = _run_outbound(_shuffled(data, _person_phases()))
    assert len(submissions) == 1
    (submission,) = submissions
    assert (submission["status"], submission["outcome"], submission["amd"]) == (
        "completed",
        "completed",
        "human",
    )
    assert submission["data"] == OUT_GOOD
    assert submission["call"]["call_session_id"] == "cs-out"
    assert [c.action for c in commands].count("gather_using_ai") == 1


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_an_outbound_call_to_a_machine_yields_one_voicemail(data: Any) -> None:
    submissions, commands = _run_outbound(_shuffled(data, _machine_phases()))
    assert len(submissions) == 1
    (submission,) = submissions
    assert (submission["status"], submission["outcome"], submission["amd"]) == (
        "abandoned",
        "voicemail",
        "machine",
    )
    assert submission["data"] == {}
    actions = [c.action for c in commands]
    assert actions[:2] == ["dial", "speak"] and actions.count("speak") == 1
    assert actions.count("hangup") <= 1 and "gather_using_ai" not in actions


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_an_outbound_call_to_a_busy_number_yields_one_submission(data: Any) -> None:
    submissions, commands = _run_outbound(_shuffled(data, _busy_phases()))
    assert [s["outcome"] for s in submissions] == ["busy"]
    assert [c.action for c in commands] == ["dial"]
