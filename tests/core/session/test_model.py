"""The stored Session: sessions written by earlier versions still load and mean the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.core.forms import load_forms
from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.model import ClosingPhase, DeadlineKind, GatherKind, Session, State

from .test_decide import Call

FORMS = Path(__file__).resolve().parents[2] / "fixtures" / "forms"

# A session as an earlier version stored it (model_dump_json(by_alias=True)): its gather
# was refused once and issued again, which that version counted as `tries`.
OLD_SESSION_JSON = """{
  "id": "sess-old", "form": "contact", "form_version": "3f2a9c0b1d4e", "state": "gathering",
  "call": {"call_control_id": "v3:test-call", "call_leg_id": null, "call_session_id": null,
           "connection_id": null, "from": "+13125550143", "to": "+13125550199",
           "direction": "incoming"},
  "started_at": 1000.0, "updated_at": 1004.0, "ended_at": null, "attempt": 2,
  "gather": {"kind": "ai", "attempt": 2, "fields": ["name", "email", "age"], "seq": 4,
             "tries": 1},
  "fields": {}, "partial": {}, "transcript": [], "errors": [],
  "event_ids": ["evt-1", "evt-2"], "command_seq": 4, "deadline": 2804.0,
  "deadline_kind": "timeout", "call_alive": true, "hangup_cause": null,
  "closing_phase": null, "outcome": null, "submission_id": null, "corrections": 0,
  "notes": [], "conversation": []
}"""


@pytest.fixture(name="forms", scope="module")
def _forms() -> Any:
    return load_forms(FORMS)


def test_an_old_session_with_tries_loads_and_its_gather_is_not_reissued_twice(
    forms: Any,
) -> None:
    """`tries` is read as `refusals`: the gather already reissued is not issued a third time."""
    session = Session.model_validate_json(OLD_SESSION_JSON)
    assert session.gather is not None and session.gather.refusals == 1
    assert session.gather.kind is GatherKind.AI
    assert session.deadline_kind is DeadlineKind.TIMEOUT
    stored = orjson.loads(session.model_dump_json(by_alias=True))
    assert stored["gather"] == {
        "kind": "ai",
        "attempt": 2,
        "fields": ["name", "email", "age"],
        "seq": 4,
        "refusals": 1,
    }
    refused = {"seq": 4, "action": C.GATHER_USING_AI, "code": "90046"}
    call = Call(forms)
    call.session = session
    call.feed(call.ev(E.CommandFailed, **refused))
    assert C.GATHER_STOP not in call.actions() and C.GATHER_USING_AI not in call.actions()
    assert call.session.state == State.FAILED
    # without `tries`, the same refusal is the first: stopped and issued once more
    first = Call(forms)
    fresh = orjson.loads(OLD_SESSION_JSON)
    del fresh["gather"]["tries"]
    first.session = Session.model_validate(fresh)
    first.feed(first.ev(E.CommandFailed, **refused))
    assert first.actions() == [C.GATHER_STOP, C.GATHER_USING_AI]


def test_sub_states_are_stored_as_the_same_strings(forms: Any) -> None:
    """The StrEnum sub-states dump to the strings earlier versions stored, and read back."""
    call = Call(forms)
    call.start()
    call.ended({"name": "Maria Gonzalez", "email": "maria@example.com", "age": 36})
    s = call.session
    assert (s.closing_phase, s.deadline_kind) == (ClosingPhase.GOODBYE, DeadlineKind.SPEECH)
    stored = orjson.loads(s.model_dump_json(by_alias=True))
    assert (stored["closing_phase"], stored["deadline_kind"]) == ("goodbye", "speech")
    again = Session.model_validate_json(s.model_dump_json(by_alias=True))
    assert again == s
    assert type(again.closing_phase) is ClosingPhase
