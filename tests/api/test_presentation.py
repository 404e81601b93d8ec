"""Masking rules of collector.web.presentation, as plain unit tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.core.forms import load_forms
from collector.core.session.model import CallInfo, FieldState, Gather, Message, Session, State
from collector.web.auth import COOKIE_MAX_AGE, Auth
from collector.web.presentation import (
    MASK,
    SENSITIVE_LINE,
    Masker,
    session_detail,
    session_summary,
    submission_view,
)

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(name="forms", scope="module")
def _forms():
    return load_forms(ROOT / "tests" / "fixtures" / "forms")


def session(form: str, **kw) -> Session:
    return Session(
        id="s1",
        form=form,
        call=CallInfo(call_control_id="c1", **{"from": "+13125550100"}, to="+13125559000"),
        started_at=1_700_000_000.0,
        updated_at=1_700_000_010.0,
        **kw,
    )


def test_verbatim_and_spoken_forms_are_masked_in_every_line() -> None:
    m = Masker.build(
        ["dob", "pin"], [("dob", "1987-04-12"), ("pin", "4321")], {"dob": {"format": "date"}}
    )
    assert m.text("Born 1987-04-12, right?") == f"Born {MASK}, right?"
    assert m.text("So that's APRIL 12, 1987.") == f"So that's {MASK}."
    assert m.text("your pin 4 3 2 1 is set") == f"your pin {MASK} is set"
    assert m.text("nothing here") == "nothing here"
    assert (
        m.line("assistant", "I have April 12, 1987 as your birthday")
        == f"I have {MASK} as your birthday"
    )


def test_a_user_line_with_a_sensitive_value_is_replaced_whole() -> None:
    m = Masker.build(["pin"], [("pin", "4321")])
    assert m.line("user", "It's 4321.") == SENSITIVE_LINE
    assert m.line("user", "my pin is four three two one") == SENSITIVE_LINE  # digits as words
    assert m.line("user", "Sure, go ahead.") == "Sure, go ahead."


def test_digit_runs_shared_with_a_sensitive_value_are_caught() -> None:
    m = Masker.build(["card"], [("card", "4111 1111 1111 1234")])
    assert m.line("user", "the last four are 1234") == SENSITIVE_LINE
    assert m.line("user", "it's 4111-1111-1111-1234") == SENSITIVE_LINE
    assert m.line("user", "I was born in 1987") == "I was born in 1987"
    assert m.line("assistant", "ending in 1234?") == f"ending in {MASK}?"
    assert m.line("user", "call me at 555") == "call me at 555"  # fewer than 4 digits


def test_no_sensitive_field_means_nothing_changes() -> None:
    m = Masker.build([], [])
    assert not m.active
    assert m.line("user", "4321") == "4321" and m.text("4321") == "4321"
    assert m.values({"a": 1}) == {"a": 1}


def test_object_values_mask_each_leaf() -> None:
    m = Masker.build(["address"], [("address", {"street": "12 Elm Street", "zip": "60601"})])
    assert m.value("address", {"street": "x"}) == MASK
    assert m.line("user", "I live on 12 elm street") == SENSITIVE_LINE
    assert m.line("user", "zip is 60601") == SENSITIVE_LINE


def test_every_caller_line_of_a_gather_asking_a_sensitive_field_is_masked(forms) -> None:
    form = forms["secret"]
    s = session(
        "secret",
        state=State.GATHERING,
        attempt=1,
        gather=Gather(kind="ai", attempt=1, fields=["account", "pin"]),
        partial={"account": "123456"},
        transcript=[
            Message(role="assistant", content="What is your PIN?", attempt=1),
            Message(role="user", content="It is 9876", attempt=1),
            Message(role="user", content="Hold on", attempt=1),
        ],
    )
    view = session_detail(s, form)
    # before the PIN is heard: no caller line of this gather shows, digits or not
    assert [m["content"] for m in view["transcript"]] == [
        "What is your PIN?",
        SENSITIVE_LINE,
        SENSITIVE_LINE,
    ]
    # once the PIN is heard they stay masked (the rule never changes its mind)
    s.partial["pin"] = "9876"
    view = session_detail(s, form)
    assert [m["content"] for m in view["transcript"]][1:] == [SENSITIVE_LINE, SENSITIVE_LINE]
    assert view["partial"] == {"account": "123456", "pin": MASK}
    assert view["fields"]["pin"]["partial"] == MASK and view["fields"]["pin"]["status"] == "hearing"
    assert "9876" not in json.dumps(view)


def test_session_views_mask_fields_submission_and_errors(forms) -> None:
    form = forms["secret"]
    s = session(
        "secret",
        state=State.COMPLETED,
        attempt=1,
        fields={
            "account": FieldState(value="123456", has_value=True, valid=True, attempts=1),
            "pin": FieldState(value="4321", has_value=True, valid=True, attempts=1),
        },
        transcript=[Message(role="user", content="4321", attempt=1)],
        notes=[{"kind": "command_failed", "at": 1_700_000_005.0, "detail": "bad pin 4321"}],
    )
    submission = {
        "submission_id": "sub",
        "form": "secret",
        "form_version": form.version,
        "status": "completed",
        "data": {"account": "123456", "pin": "4321"},
        "errors": [],
        "fields": {"pin": {"value": "4321", "source": "ai", "attempts": 1, "errors": []}},
        "transcript": [{"role": "user", "content": "4321", "attempt": 1}],
    }
    view = session_detail(s, form, submission=submission)
    text = json.dumps(view, ensure_ascii=False)
    assert "4321" not in text
    assert view["fields"]["account"]["value"] == "123456"
    assert view["submission"]["data"]["pin"] == MASK
    assert view["notes"][0]["detail"] == f"bad pin {MASK}"
    assert view["started_at"] == "2023-11-14T22:13:20Z"
    summary = session_summary(s, form)
    assert summary["fields_filled"] == 2 and summary["fields_total"] == 2
    assert submission["data"]["pin"] == "4321"  # the original is untouched


def test_a_session_whose_form_is_gone_masks_every_value() -> None:
    s = session(
        "removed",
        fields={"secret": FieldState(value="hunter2", has_value=True, valid=True, attempts=1)},
        transcript=[Message(role="user", content="it's hunter2", attempt=1)],
    )
    view = session_detail(s, None)
    assert view["fields"]["secret"]["value"] == MASK
    assert view["transcript"][0]["content"] == SENSITIVE_LINE


def test_submission_view_masks_embedded_transcript(forms) -> None:
    m = Masker.build(["pin"], [("pin", "4321")])
    out = submission_view(
        {
            "data": {"pin": "4321"},
            "fields": {},
            "errors": [],
            "transcript": [{"role": "user", "content": "4321."}],
        },
        m,
    )
    assert out["data"] == {"pin": MASK} and out["transcript"][0]["content"] == SENSITIVE_LINE


def test_the_dashboard_cookie_expires_and_dies_with_the_token() -> None:
    now = [1_000_000.0]
    auth = Auth("token-a", clock=lambda: now[0])
    cookie = auth.cookie_value()
    assert auth.cookie_ok(cookie)
    assert not Auth("token-b", clock=lambda: now[0]).cookie_ok(cookie)
    now[0] += COOKIE_MAX_AGE + 1
    assert not auth.cookie_ok(cookie)
    assert not auth.cookie_ok(None) and not auth.cookie_ok("v1.x.y") and not auth.cookie_ok("a.b")
    assert auth.token_ok("token-a") and not auth.token_ok("token-") and not auth.token_ok("")
    assert auth.bearer_ok("Bearer token-a") and not auth.bearer_ok("Token token-a")
