"""Differential tests: the server's verdict on a form is the form's, as others read it.

For every shipped form and every form of the semantics corpus, data generated from the
inlined form (hypothesis-jsonschema), valid and mutated, gets the same verdict from:

* the server's validator (`Form.validate`, on the inlined schema, formats checked);
* `jsonschema` on the original files, with `$ref`s resolved by `referencing` (so the
  inliner is out of the loop), formats checked the same way;
* the parameters of the gather that asks each field (given the other answers), which
  must accept every value the whole form accepts;
* `jsonschema-rs` on the original files (an independent implementation that runs the
  official JSON Schema Test Suite), formats not checked, compared with `jsonschema` on
  the original files without formats (the implementations' format checkers differ).

`jsonschema` runs with the server's `FormValidator` (ECMA-262 `\\d`, which jsonschema-rs
found: Python's `\\d` also matches an Arabic-Indic zero).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from collector.core.forms import Form, load_forms
from collector.core.forms.form import FORMAT_CHECKER, FormValidator

ROOT = Path(__file__).resolve().parents[3]
DIRS = [ROOT / "schemas", ROOT / "examples" / "forms", ROOT / "tests" / "fixtures" / "semantics"]
CASES = [(d, form_id) for d in DIRS for form_id in load_forms(d)]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)


def _registry(forms_dir: Path) -> Registry[Any]:
    resources = []
    for path in [*forms_dir.glob("*.json"), *(forms_dir / "defs").glob("*.json")]:
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = DRAFT202012.create_resource(contents)
        resources.append((path.resolve().as_uri(), resource))
    return Registry().with_resources(resources).crawl()


class Judges:
    """The verdicts of one form's three readers."""

    def __init__(self, forms_dir: Path, form: Form) -> None:
        self.form = form
        original = json.loads(form.path.read_text(encoding="utf-8"))
        registry = _registry(forms_dir)
        uri = form.path.resolve().as_uri()
        self.reference = FormValidator(
            {**original, "$id": original.get("$id", uri)} if "$id" not in original else original,
            registry=registry,
            format_checker=FORMAT_CHECKER,
        )
        self.structural = FormValidator(
            {**original, "$id": original.get("$id", uri)} if "$id" not in original else original,
            registry=registry,
        )

        def retrieve(target: str) -> Any:
            return json.loads(Path(unquote(urlsplit(target).path)).read_text(encoding="utf-8"))

        self.independent = jsonschema_rs.Draft202012Validator(
            original, base_uri=uri, retriever=retrieve, validate_formats=False
        )

    def check(self, data: Any) -> None:
        ours = not self.form.validate(data) if isinstance(data, dict) else None
        reference = self.reference.is_valid(data)
        if ours is not None:
            assert ours == reference, (data, self.form.validate(data))
        if reference and isinstance(data, dict):
            self.parameters_accept(data)
        assert self.independent.is_valid(data) == self.structural.is_valid(data), json.dumps(data)

    def parameters_accept(self, data: dict[str, Any]) -> None:
        """What Telnyx receives to ask a field, given the other answers, accepts every
        value the whole form accepts there: the parameters are never stricter."""
        for name, value in data.items():
            if name not in self.form.fields:
                continue
            given = {k: v for k, v in data.items() if k != name}
            schema = self.form.sub_parameters([name], given)["properties"][name]
            assert FormValidator(schema, format_checker=FORMAT_CHECKER).is_valid(value), (
                name,
                value,
                schema,
            )


@pytest.fixture(name="judges", scope="module")
def _judges() -> dict[tuple[Path, str], Judges]:
    return {(d, f): Judges(d, load_forms(d)[f]) for d, f in CASES}


@pytest.mark.parametrize(("forms_dir", "form_id"), CASES, ids=[f for _, f in CASES])
def test_generated_answers_get_one_verdict(
    forms_dir: Path, form_id: str, judges: dict[tuple[Path, str], Judges]
) -> None:
    """Valid data from the form, and its mutations, are judged alike by all three."""
    judge = judges[(forms_dir, form_id)]
    names = list(judge.form.fields)

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(
        valid=from_schema(judge.form.schema),
        drop=st.sets(st.sampled_from(names), max_size=2),
        change=st.dictionaries(st.sampled_from(names), JSON, max_size=2),
    )
    def run(valid: Any, drop: set[str], change: dict[str, Any]) -> None:
        judge.check(valid)
        mutated = {k: v for k, v in valid.items() if k not in drop}
        judge.check(mutated)
        judge.check({**mutated, **change})

    run()
