"""JSON pointers as RFC 6901 spells them."""

from __future__ import annotations

from collector.core.pointer import child, escape, join


def test_tilde_is_escaped_before_slash() -> None:
    assert escape("a/b") == "a~1b"
    assert escape("m~n") == "m~0n"
    assert escape("~1") == "~01"  # not "~1" read back as "/"
    assert escape(3) == "3"


def test_pointers_are_built_from_the_root() -> None:
    assert join([]) == ""
    assert join(["properties", "a/b", 0]) == "/properties/a~1b/0"
    assert child("", "x") == "/x"
    assert child("/properties", "~") == "/properties/~0"


def test_forms_and_parameters_use_the_same_escaping() -> None:
    from collector.core.telnyx_params import check_params

    problems = check_params("speak", {"payload": "hi", "voice": "female", "a/b~": 1})
    assert any(p.startswith("/a~1b~0:") for p in problems), problems
