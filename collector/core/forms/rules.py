"""Which fields a form requires, given the answers so far.

A form's root may require fields only under conditions: `if`/`then`/`else`,
`dependentRequired`, `dependentSchemas`, and the branches of `anyOf`/`oneOf` (inside
`allOf` too, to any depth). The first gather asks the fields required unconditionally;
after each gather `requirements(data)` says which fields the rules now require, so the
session asks exactly those in a follow-up. Telnyx's AI is never asked to evaluate a rule.

How each construct is read, with `data` the answers that passed validation:

* `required`, `allOf`: always apply.
* `dependentRequired` / `dependentSchemas`: apply when their key is answered.
* `if`: `then` applies when `data` is valid against `if`, `else` otherwise. As in JSON
  Schema itself, an `if` about an unanswered field that its `if` does not `require`
  holds vacuously.
* `anyOf` / `oneOf`: when no branch is valid yet, the branch that `data` already fits but
  for missing fields ("viable"), with the fewest missing, applies; when one already is
  valid, nothing more is needed. When none is viable the form cannot be completed: the
  final verdict (the whole schema) says so.

The verdict itself is never this module's: a submission is `completed` only when the
whole schema validates (`Form.validate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonschema.protocols import Validator

from collector.core.pointer import escape

CONDITIONAL = ("if", "then", "else", "dependentRequired", "dependentSchemas", "anyOf", "oneOf")
_MISSING_ONLY = frozenset({"required", "dependentRequired"})


def _names(value: Any) -> list[str]:
    return [n for n in value if isinstance(n, str)] if isinstance(value, list) else []


def unconditional(schema: Mapping[str, Any]) -> list[str]:
    """Fields required whatever the answers: root `required`, and `allOf`'s, in order."""
    out = list(dict.fromkeys(_names(schema.get("required"))))
    for sub in schema.get("allOf") or []:
        if isinstance(sub, dict):
            out.extend(n for n in unconditional(sub) if n not in out)
    return out


def rule_requirements(
    schema: Mapping[str, Any], pointer: str = "", conditional: bool = False
) -> Iterator[tuple[str, str, bool]]:
    """(field, pointer of the name, under a condition?) for every name a rule requires."""
    for i, name in enumerate(schema.get("required") or []):
        if isinstance(name, str):
            yield name, f"{pointer}/required/{i}", conditional
    deps = schema.get("dependentRequired")
    for key, names in deps.items() if isinstance(deps, dict) else ():
        for i, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str):
                yield name, f"{pointer}/dependentRequired/{escape(key)}/{i}", True
    subs = schema.get("dependentSchemas")
    for key, sub in subs.items() if isinstance(subs, dict) else ():
        if isinstance(sub, dict):
            yield from rule_requirements(sub, f"{pointer}/dependentSchemas/{escape(key)}", True)
    for key in ("then", "else"):
        if isinstance(schema.get(key), dict):
            yield from rule_requirements(schema[key], f"{pointer}/{key}", True)
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(key) or []):
            if isinstance(sub, dict):
                yield from rule_requirements(
                    sub, f"{pointer}/{key}/{i}", conditional or key != "allOf"
                )


_APPLICATORS = ("if", "then", "else", "not")
_APPLICATOR_LISTS = ("allOf", "anyOf", "oneOf")


def rule_field_names(
    schema: Mapping[str, Any], pointer: str = "", root: bool = True
) -> Iterator[tuple[str, str]]:
    """(field name, pointer) for every field a root rule speaks of: the names under a
    rule's `properties`, and the keys of `dependentRequired` / `dependentSchemas`."""
    if not root:
        props = schema.get("properties")
        for name in props if isinstance(props, dict) else ():
            yield name, f"{pointer}/properties/{escape(name)}"
    for key in ("dependentRequired", "dependentSchemas"):
        deps = schema.get(key)
        for name in deps if isinstance(deps, dict) else ():
            yield name, f"{pointer}/{key}/{escape(name)}"
        if key == "dependentSchemas" and isinstance(deps, dict):
            for name, sub in deps.items():
                if isinstance(sub, dict):
                    yield from rule_field_names(sub, f"{pointer}/{key}/{escape(name)}", False)
    for key in _APPLICATORS:
        if isinstance(schema.get(key), dict):
            yield from rule_field_names(schema[key], f"{pointer}/{key}", False)
    for key in _APPLICATOR_LISTS:
        for i, sub in enumerate(schema.get(key) or []):
            if isinstance(sub, dict):
                yield from rule_field_names(sub, f"{pointer}/{key}/{i}", False)


class Rules:
    """The root rules of one form, with their sub-validators compiled once."""

    def __init__(self, schema: Mapping[str, Any], make: Callable[[Any], Validator]) -> None:
        self.schema = schema
        self._make = make
        self._validators: dict[str, Validator] = {}

    def _validator(self, pointer: str, schema: Any) -> Validator:
        validator = self._validators.get(pointer)
        if validator is None:
            validator = self._validators[pointer] = self._make(schema)
        return validator

    def requirements(self, data: Mapping[str, Any]) -> dict[str, str]:
        """Each field the rules require given data, with the pointer of the rule."""
        out: dict[str, str] = {}
        self._walk(self.schema, "", dict(data), out)
        return out

    def bounds(self, data: Mapping[str, Any]) -> dict[str, list[Any]]:
        """For each field, the schemas that the rules holding for data add to it (a
        `then: {"properties": {"x": {"minLength": 5}}}` whose `if` holds)."""
        found: dict[str, list[Any]] = {}
        self._walk(self.schema, "", dict(data), {}, found)
        return found

    def _walk(
        self,
        node: Any,
        pointer: str,
        data: dict[str, Any],
        out: dict[str, str],
        bounds: dict[str, list[Any]] | None = None,
    ) -> None:
        if not isinstance(node, dict):
            return
        if bounds is not None and pointer and isinstance(node.get("properties"), dict):
            for name, sub in node["properties"].items():
                bounds.setdefault(name, []).append(sub)
        for name in _names(node.get("required")):
            out.setdefault(name, f"{pointer}/required")
        deps = node.get("dependentRequired")
        for key, names in deps.items() if isinstance(deps, dict) else ():
            if key in data:
                for name in _names(names):
                    out.setdefault(name, f"{pointer}/dependentRequired/{escape(key)}")
        subs = node.get("dependentSchemas")
        for key, sub in subs.items() if isinstance(subs, dict) else ():
            if key in data:
                self._walk(sub, f"{pointer}/dependentSchemas/{escape(key)}", data, out, bounds)
        if "if" in node:
            holds = self._validator(f"{pointer}/if", node["if"]).is_valid(data)
            branch = "then" if holds else "else"
            if branch in node:
                self._walk(node[branch], f"{pointer}/{branch}", data, out, bounds)
        for i, sub in enumerate(node.get("allOf") or []):
            self._walk(sub, f"{pointer}/allOf/{i}", data, out, bounds)
        for key in ("anyOf", "oneOf"):
            branches = node.get(key)
            if isinstance(branches, list) and branches:
                self._choose(key, branches, pointer, data, out, bounds)

    def _choose(
        self,
        key: str,
        branches: list[Any],
        pointer: str,
        data: dict[str, Any],
        out: dict[str, str],
        bounds: dict[str, list[Any]] | None,
    ) -> None:
        best: tuple[int, int] | None = None
        for i, branch in enumerate(branches):
            where = f"{pointer}/{key}/{i}"
            errors = list(self._validator(where, branch).iter_errors(data))
            if not errors:
                return  # already satisfied (oneOf's "exactly one" is the verdict's)
            viable = all(e.validator in _MISSING_ONLY and not e.absolute_path for e in errors)
            if viable and (best is None or len(errors) < best[0]):
                best = (len(errors), i)
        if best is not None:
            i = best[1]
            self._walk(branches[i], f"{pointer}/{key}/{i}", data, out, bounds)
