"""Inlining keeps the form's meaning: keywords beside `$ref`, root `$id`, anchors, and
the constructs that cannot be inlined exactly are refused with one line each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collector.core.forms import load_forms
from collector.core.forms.merge import combine

from .conftest import Writer, minimal

Lint = Callable[[], list[str]]
SEMANTICS = Path(__file__).resolve().parents[2] / "fixtures" / "semantics"


@pytest.fixture(name="corpus", scope="module")
def _corpus() -> Any:
    return load_forms(SEMANTICS)


def test_a_pattern_beside_a_ref_applies_with_the_definitions(corpus: Any) -> None:
    """Both patterns hold: "+1 not a number" fails the definition's, "+44..." the sibling's."""
    form = corpus["siblings"]
    assert form.validate_field("phone", "+13125550123") == []
    assert form.validate_field("phone", "+1 not a number")
    assert form.validate_field("phone", "+442071234567")


def test_a_looser_bound_beside_a_ref_does_not_loosen_the_definition(corpus: Any) -> None:
    """maxLength 40 next to a definition's 16 leaves 16: the smaller bound wins."""
    form = corpus["siblings"]
    assert form.schema["properties"]["phone"]["maxLength"] == 16
    assert form.validate_field("phone", "+1" + "2" * 20)


def test_an_enum_beside_a_ref_is_the_intersection(corpus: Any) -> None:
    """enum [green, blue, pink] next to [red, green, blue] allows green and blue only."""
    form = corpus["siblings"]
    assert form.schema["properties"]["color"]["enum"] == ["green", "blue"]
    assert form.validate_field("color", "pink")
    assert form.validate_field("color", "red")
    assert form.validate_field("color", "blue") == []


def test_properties_and_required_beside_a_ref_add_to_the_definitions(corpus: Any) -> None:
    """The definition's `street` stays required and its `zip` pattern stays; `city` joins."""
    form = corpus["siblings"]
    assert form.validate_field("address", {"street": "1 Main St", "city": "Chicago"}) == []
    assert form.validate_field("address", {"city": "Chicago"})
    assert form.validate_field("address", {"street": "1 Main St"})
    assert form.validate_field("address", {"street": "x", "city": "y", "zip": "abc"})


def test_a_property_beside_a_closed_definition_stays_additional(corpus: Any) -> None:
    """additionalProperties: false in the definition still rejects a `z` the sibling names."""
    form = corpus["siblings"]
    assert form.validate_field("point", {"x": 1, "y": 2}) == []
    assert form.validate_field("point", {"x": 1, "z": 3})


def test_unevaluated_properties_keep_their_scope(corpus: Any) -> None:
    """A definition's unevaluatedProperties does not see the sibling's `label`, as in 2020-12."""
    form = corpus["siblings"]
    assert form.validate_field("tag", {"kind": "a"}) == []
    assert form.validate_field("tag", {"kind": "a", "label": "b"})


def test_an_anchor_in_a_shared_definition_resolves(corpus: Any) -> None:
    """`defs/common.json#short` finds the `$anchor`, and the sibling minLength adds to it."""
    form = corpus["siblings"]
    assert form.validate_field("nick", "Al") == []
    assert form.validate_field("nick", "A")
    assert form.validate_field("nick", "A" * 11)


def test_a_root_id_is_the_base_of_relative_refs(corpus: Any) -> None:
    """`anchored#code` resolves against the form's `$id`, not against its file name."""
    form = corpus["anchored"]
    assert form.validate_field("code", "ABC") == []
    assert form.validate_field("code", "abc")
    assert form.validate_field("size", 10)


@pytest.mark.parametrize(
    ("referenced", "siblings", "expected"),
    [
        ({"maxLength": 5}, {"maxLength": 9}, {"maxLength": 5}),
        ({"minimum": 5}, {"minimum": 1}, {"minimum": 5}),
        ({"type": "number"}, {"type": "integer"}, {"type": "integer"}),
        ({"required": ["a"]}, {"required": ["b", "a"]}, {"required": ["a", "b"]}),
        ({"enum": [1, 2, "x"]}, {"enum": [2.0, "x", True]}, {"enum": [2, "x"]}),
        ({"title": "A", "type": "string"}, {"title": "B"}, {"title": "B", "type": "string"}),
        ({"pattern": "a"}, {"pattern": "b"}, {"pattern": "a", "allOf": [{"pattern": "b"}]}),
        (
            {"if": {"minimum": 1}, "then": {"maximum": 5}},
            {"if": {"minimum": 2}, "then": {"maximum": 3}},
            {
                "if": {"minimum": 1},
                "then": {"maximum": 5},
                "allOf": [{"if": {"minimum": 2}, "then": {"maximum": 3}}],
            },
        ),
        ({"type": "string"}, {}, {"type": "string"}),
        (True, {"type": "string"}, {"type": "string"}),
        ({"type": "string"}, False, False),
    ],
)
def test_combine_merges_exactly_or_falls_back_to_all_of(
    referenced: Any, siblings: Any, expected: Any
) -> None:
    """Each keyword's exact merge, and allOf where no merge is exact."""
    assert combine(referenced, siblings) == expected


def test_dynamic_ref_is_refused_with_one_line(write: Writer, lint: Lint) -> None:
    """$dynamicRef cannot be inlined: forms check names the keyword and why."""
    write(
        "f.json",
        minimal(
            properties={"name": {"$dynamicRef": "#meta", "type": "string", "description": "n"}}
        ),
    )
    lines = lint()
    assert lines == [
        "forms/f.json: /properties/name/$dynamicRef: $dynamicRef cannot be inlined (its "
        "target depends on where the schema is used); use $ref"
    ]


def test_unevaluated_properties_at_the_root_are_refused(write: Writer, lint: Lint) -> None:
    """A root unevaluatedProperties cannot survive per-gather parameters: refused clearly."""
    write("f.json", minimal(unevaluatedProperties=False))
    lines = lint()
    assert len(lines) == 1
    assert lines[0].startswith("forms/f.json: /unevaluatedProperties: unevaluatedProperties")


def test_a_rule_naming_an_unknown_field_is_refused(write: Writer, lint: Lint) -> None:
    """A `then` requiring a field the form does not have is an error with a did-you-mean."""
    write(
        "f.json",
        minimal(**{"if": {"required": ["name"]}, "then": {"required": ["nmae", "age"]}}),
    )
    lines = lint()
    assert lines == [
        "forms/f.json: /then/required/0: 'nmae' is not one of the form's properties "
        "(did you mean 'name'?)",
        "forms/f.json: /then/required/1: 'age' is not one of the form's properties",
    ]


def test_a_ref_the_root_id_moves_elsewhere_says_where_it_looked(write: Writer, lint: Lint) -> None:
    """With a root $id, a relative $ref resolves against it, and the message says so."""
    write("defs/x.json", {"type": "string"})
    write(
        "f.json",
        minimal(
            **{"$id": "https://example.com/f"},
            properties={"name": {"$ref": "defs/x.json", "description": "n"}},
        ),
    )
    lines = lint()
    assert lines == [
        "forms/f.json: /properties/name/$ref: cannot resolve $ref 'defs/x.json': no schema "
        "at https://example.com/defs/x.json (looked up in this form and forms/defs/*.json, "
        "by path or $id)"
    ]


def test_conditional_fields_are_not_asked_first(corpus: Any) -> None:
    """The first gather's parameters are a plain object of the fields no rule guards."""
    form = corpus["conditional"]
    assert form.first_fields == ["rating", "company", "contact", "kind"]
    assert form.parameters["required"] == ["rating", "kind"]
    for key in ("if", "then", "else", "allOf", "oneOf", "not", "dependentRequired"):
        assert key not in form.parameters


@pytest.mark.parametrize(
    ("given", "asked"),
    [
        ({"rating": 4, "kind": "person"}, ["first_name"]),
        ({"rating": 1, "kind": "person"}, ["follow_up", "first_name"]),
        ({"rating": 4, "kind": "business", "company": "Acme"}, ["vat_id", "legal_name"]),
        ({"rating": 4, "kind": "person", "contact": "email"}, ["email", "first_name"]),
        ({"rating": 4, "kind": "person", "contact": "phone", "first_name": "A"}, ["phone"]),
    ],
)
def test_requirements_follow_the_answers(
    corpus: Any, given: dict[str, Any], asked: list[str]
) -> None:
    """Each rule requires its fields when and only when it holds."""
    form = corpus["conditional"]
    required = form.requirements(given)
    assert [n for n in form.fields if n in required and n not in given] == asked


def test_a_rule_about_an_unknown_field_is_refused(write: Writer, lint: Lint) -> None:
    """An `if` about a misspelt field would hold vacuously: forms check names it."""
    write(
        "f.json",
        minimal(
            **{
                "if": {"properties": {"nmae": {"const": "x"}}, "required": ["name"]},
                "then": {"required": ["name"]},
                "dependentRequired": {"emial": ["name"]},
            }
        ),
    )
    assert lint() == [
        "forms/f.json: /dependentRequired/emial: a rule of the form names 'emial', which is "
        "not one of the form's properties",
        "forms/f.json: /if/properties/nmae: a rule of the form names 'nmae', which is not "
        "one of the form's properties (did you mean 'name'?)",
    ]
