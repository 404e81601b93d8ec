"""The masker (collector.web.masking): values and transcript lines, as plain unit tests."""

from __future__ import annotations

from collector.web.masking import MASK, SENSITIVE_LINE, Masker


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
