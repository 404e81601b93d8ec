"""Root rules during the call: follow-up gathers when a rule requires a field, and the
whole form as the verdict (never `completed` while any rule fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.core.forms import load_forms
from collector.core.session import commands as C
from collector.core.session import events as E

from .test_decide import Call

ROOT = Path(__file__).resolve().parents[3]
SEMANTICS = ROOT / "tests" / "fixtures" / "semantics"


@pytest.fixture(name="corpus", scope="module")
def _corpus() -> Any:
    return load_forms(SEMANTICS)


@pytest.fixture(name="shipped", scope="module")
def _shipped() -> Any:
    return load_forms(ROOT / "schemas")


def gathers(call: Call) -> list[dict[str, Any]]:
    return [c.body for c in call.commands if c.action == C.GATHER_USING_AI]


def asked(body: dict[str, Any]) -> list[str]:
    return list(body["parameters"]["properties"])


def test_a_low_rating_brings_the_follow_up_questions(shipped: Any) -> None:
    """Rating 1 asks what went wrong and how to follow up; a phone choice asks the number."""
    call = Call(shipped, "survey")
    call.start()
    assert asked(gathers(call)[0]) == ["rating", "would_recommend"]
    call.ended({"rating": 1, "would_recommend": False})
    follow_up = gathers(call)[1]
    assert asked(follow_up) == ["what_went_wrong", "contact_method"]
    assert follow_up["parameters"]["required"] == ["what_went_wrong", "contact_method"]
    assert set(follow_up["parameters"]) == {
        "type",
        "title",
        "description",
        "properties",
        "required",
    }
    assert follow_up["greeting"].startswith("Thank you. I just need a little more.")
    assert "what went wrong during your visit" in follow_up["greeting"]
    call.ended({"what_went_wrong": "A long wait.", "contact_method": "phone"})
    assert asked(gathers(call)[2]) == ["callback_phone"]
    call.ended({"callback_phone": "+13125550188"})
    (submission,) = call.submissions
    assert submission["status"] == "completed"
    assert submission["attempts"] == 3
    assert submission["fields"]["what_went_wrong"]["required_by"] == "/then/required"
    assert submission["fields"]["callback_phone"]["required_by"] == "/allOf/1/then/required"
    assert "required_by" not in submission["fields"]["rating"]


def test_a_good_rating_asks_nothing_more(shipped: Any) -> None:
    """A field whose rule does not hold is never asked."""
    call = Call(shipped, "survey")
    call.start()
    call.ended({"rating": 5, "would_recommend": True})
    assert len(gathers(call)) == 1
    (submission,) = call.submissions
    assert submission["status"] == "completed"
    assert submission["data"] == {"rating": 5, "would_recommend": True}


def test_a_follow_up_never_answered_is_asked_within_the_budget_then_incomplete(
    shipped: Any,
) -> None:
    """A follow-up has the re-ask budget: asked twice, then the call is incomplete."""
    call = Call(shipped, "survey")
    call.start()
    call.ended({"rating": 2, "would_recommend": True})
    call.ended({"contact_method": "none"})
    again = gathers(call)[2]
    assert asked(again) == ["what_went_wrong"]
    assert again["greeting"].startswith("Sorry, I need to check one thing.")
    call.ended({})
    assert len(gathers(call)) == 3
    (submission,) = call.submissions
    assert submission["status"] == "incomplete"
    assert {"pointer": "/what_went_wrong", "message": "is required"} in submission["errors"]


def test_a_rule_that_bounds_a_collected_field_re_asks_it(corpus: Any) -> None:
    """`then` raises follow_up's minLength to 5: the follow-up's parameters say so, and
    "slow" is re-asked, then accepted."""
    call = Call(corpus, "conditional")
    call.start()
    call.ended({"rating": 1, "kind": "person"})
    assert asked(gathers(call)[1]) == ["follow_up", "first_name"]
    # what Telnyx is told carries the rule's bound too
    assert gathers(call)[1]["parameters"]["properties"]["follow_up"]["minLength"] == 5
    call.ended({"follow_up": "slow", "first_name": "Ann"})
    again = gathers(call)[2]
    assert asked(again) == ["follow_up"]
    assert "at least 5 characters" in again["greeting"]
    call.ended({"follow_up": "far too slow"})
    (submission,) = call.submissions
    assert submission["status"] == "completed"
    assert submission["data"]["follow_up"] == "far too slow"


def test_the_branch_the_answers_select_is_asked(corpus: Any) -> None:
    """oneOf: kind=business selects the branch that requires legal_name; company needs vat_id."""
    call = Call(corpus, "conditional")
    call.start()
    call.ended({"rating": 4, "kind": "business", "company": "Acme"})
    assert asked(gathers(call)[1]) == ["vat_id", "legal_name"]
    call.ended({"vat_id": "DE123456789", "legal_name": "Acme Ltd"})
    (submission,) = call.submissions
    assert submission["status"] == "completed"
    assert submission["fields"]["vat_id"]["required_by"] == "/dependentRequired/company"


def test_a_dependent_schema_bound_counts(corpus: Any) -> None:
    """dependentSchemas: with a company, vat_id needs 10 characters; a 9-character one fails."""
    call = Call(corpus, "conditional")
    call.start()
    call.ended({"rating": 4, "kind": "business", "company": "Acme"})
    call.ended({"vat_id": "DE1234567", "legal_name": "Acme Ltd"})
    assert asked(gathers(call)[2]) == ["vat_id"]


def test_a_rule_no_field_can_satisfy_makes_the_call_incomplete(corpus: Any) -> None:
    """Too many properties (maxProperties 7) fails the form as a whole: never completed."""
    call = Call(corpus, "conditional")
    call.start()
    call.ended({"rating": 1, "kind": "person", "company": "Acme", "contact": "email"})
    call.ended(
        {
            "follow_up": "far too slow",
            "first_name": "Ann",
            "vat_id": "DE123456789",
            "email": "ann@example.com",
        }
    )
    (submission,) = call.submissions
    assert submission["status"] == "incomplete"
    assert {
        "pointer": "",
        "message": "the form as a whole must have at most 7 details",
    } in submission["errors"]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    answers=st.lists(
        st.dictionaries(
            st.sampled_from(
                ["rating", "kind", "company", "contact", "follow_up", "first_name"]
                + ["legal_name", "vat_id", "email", "phone"]
            ),
            st.sampled_from(
                [1, 3, 5, "person", "business", "email", "phone", "too slow", "DE123456789"]
                + ["a@example.com", "+13125550123", "x", ""]
            ),
            max_size=6,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_completed_means_the_whole_form_validates(
    corpus: Any, answers: list[dict[str, Any]]
) -> None:
    """Whatever the caller says in each gather, a completed submission's data is valid
    against the whole form, and an incomplete one is not."""
    form = corpus["conditional"]
    call = Call(corpus, "conditional")
    call.start()
    for result in answers:
        if call.submissions:
            break
        call.ended(result)
    while not call.submissions:
        call.ended({})
        if len(gathers(call)) > 20:
            raise AssertionError("the call never ends")
    (submission,) = call.submissions
    valid = not form.validate(submission["data"])
    assert (submission["status"] == "completed") == valid, submission
    if submission["status"] == "completed":
        assert submission["errors"] == []


def test_a_hangup_during_a_follow_up_is_abandoned_with_what_was_collected(
    shipped: Any,
) -> None:
    """The follow-up's gather is interrupted: abandoned, the first answers kept."""
    call = Call(shipped, "survey")
    call.start()
    call.ended({"rating": 1, "would_recommend": False})
    call.feed(call.ev(E.CallHangup, cause="normal_clearing"))
    call.feed(call.ev(E.Timer, kind="grace", due=call.session.deadline))
    (submission,) = call.submissions
    assert submission["status"] == "abandoned"
    assert submission["data"] == {"rating": 1, "would_recommend": False}


def test_null_roles_and_contents_never_become_text(shipped: Any) -> None:
    """A message_history item with a null content is kept empty, one with neither role
    nor content is dropped: the word "None" never reaches the transcript."""
    call = Call(shipped, "survey")
    call.start()
    history = [
        {"role": "assistant", "content": "How would you rate it?"},
        {"role": "user", "content": None},
        {"role": None, "content": None},
        {"content": "Five."},
    ]
    call.feed(call.ev(E.AiGatherHistory, message_history=history, client_state=call.cs()))
    lines = [(m.role, m.content) for m in call.session.transcript]
    assert lines == [
        ("assistant", "How would you rate it?"),
        ("user", ""),
        ("", "Five."),
    ]


def test_the_example_feedback_form_asks_the_branch_its_answers_select() -> None:
    """examples/forms/service_feedback.json: unhappy with a delivery asks the order number
    and delivery date; unhappy with staff asks neither; happy asks nothing more."""
    forms = load_forms(ROOT / "examples" / "forms")
    call = Call(forms, "service_feedback")
    call.start()
    assert asked(gathers(call)[0]) == ["satisfied"]
    call.ended({"satisfied": False})
    assert asked(gathers(call)[1]) == ["problem_area", "callback_ok"]
    call.ended({"problem_area": "delivery", "callback_ok": False})
    assert asked(gathers(call)[2]) == ["order_number", "delivery_date"]
    call.ended({"order_number": "4820193", "delivery_date": "2026-11-28"})
    assert call.submissions[0]["status"] == "completed"

    call = Call(forms, "service_feedback")
    call.start()
    call.ended({"satisfied": False})
    call.ended({"problem_area": "staff", "callback_ok": False})
    assert len(gathers(call)) == 2
    assert call.submissions[0]["status"] == "completed"

    call = Call(forms, "service_feedback")
    call.start()
    call.ended({"satisfied": True})
    assert len(gathers(call)) == 1
    assert call.submissions[0]["data"] == {"satisfied": True}


def test_the_session_view_says_which_fields_the_rules_require_now(shipped: Any) -> None:
    """A follow-up field is `conditional`; it becomes `required` once its rule holds,
    and a conditional field whose rule never held ends `skipped`, not `missing`."""
    from collector.web.masking import Masker
    from collector.web.presentation import field_views

    form = shipped["survey"]
    call = Call(shipped, "survey")
    call.start()
    views = field_views(call.session, form, Masker.for_session(call.session, form))
    assert views["what_went_wrong"]["conditional"] is True
    assert views["what_went_wrong"]["required"] is False
    assert views["rating"] == {**views["rating"], "required": True, "conditional": False}
    call.ended({"rating": 1, "would_recommend": False})
    views = field_views(call.session, form, Masker.for_session(call.session, form))
    assert views["what_went_wrong"]["required"] is True
    assert views["what_went_wrong"]["status"] == "asking"
    call.ended({"what_went_wrong": "A long wait.", "contact_method": "none"})
    views = field_views(call.session, form, Masker.for_session(call.session, form))
    assert call.session.terminal
    assert views["email"]["status"] == "skipped"
