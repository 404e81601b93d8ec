"""Combine a referenced schema with the keywords beside its `$ref`, keeping the meaning.

In JSON Schema 2020-12 a `$ref` is one more keyword of its schema object: the instance
must be valid against the referenced schema *and* the keywords next to the `$ref`. So
`{"$ref": "#/$defs/phone", "pattern": "^\\\\+1"}` needs both patterns, and a `maxLength`
beside a definition cannot loosen the definition's.

`combine(referenced, siblings)` writes that conjunction as one schema, merging keyword by
keyword where the merge is exact and falling back to `allOf` where it is not:

* a keyword on one side only is copied (inside its group, below);
* annotations (`title`, `description`, `examples`, `default`, ...): the siblings win;
* upper bounds take the smaller value, lower bounds the larger, `required` the union,
  `enum` the intersection, `type` the intersection (`integer` within `number`),
  `allOf` the concatenation, `dependentRequired` the union per key;
* keywords that read each other are merged as a group: `properties` /
  `patternProperties` / `additionalProperties` merge per property name only when that
  keeps which names count as additional; `prefixItems` / `items`, `contains` /
  `minContains` / `maxContains` and `if` / `then` / `else` merge only when one side has
  the group;
* anything else that both sides have goes to `allOf`, one branch per side;
* when either side uses `unevaluatedProperties` / `unevaluatedItems`, nothing is merged:
  the referenced schema becomes an `allOf` branch beside the siblings, which is exactly
  how 2020-12 evaluates a `$ref` (its annotations stay visible to the siblings'
  `unevaluated*`, the siblings' stay invisible to its own).
"""

from __future__ import annotations

import copy
from typing import Any

ANNOTATIONS = frozenset(
    {"title", "description", "examples", "default", "deprecated", "readOnly", "writeOnly"}
)
_SMALLER = frozenset({"maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum"})
_LARGER = frozenset({"minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum"})
_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"properties", "patternProperties", "additionalProperties"}),
    frozenset({"prefixItems", "items"}),
    frozenset({"contains", "minContains", "maxContains"}),
    frozenset({"if", "then", "else"}),
)
UNEVALUATED = frozenset({"unevaluatedProperties", "unevaluatedItems"})


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema means it: 1 == 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _types(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return list(value)
    return None


def _type_intersection(a: Any, b: Any) -> Any:
    left, right = _types(a), _types(b)
    if left is None or right is None:
        return None
    out = [t for t in left if t in right]
    if "integer" in left and "number" in right and "integer" not in out:
        out.append("integer")
    if "integer" in right and "number" in left and "integer" not in out:
        out.append("integer")
    if not out:
        return None  # nothing fits: leave both, the instance fails either way
    return out[0] if len(out) == 1 else out


def _merge_keyword(key: str, a: Any, b: Any) -> tuple[bool, Any]:
    """(merged exactly?, value) for one keyword both sides have."""
    if json_equal(a, b):
        return True, copy.deepcopy(b)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if key in _SMALLER and numbers:
        return True, min(a, b)
    if key in _LARGER and numbers:
        return True, max(a, b)
    if key == "required" and isinstance(a, list) and isinstance(b, list):
        return True, [*a, *(n for n in b if n not in a)]
    if key == "enum" and isinstance(a, list) and isinstance(b, list):
        return True, [copy.deepcopy(x) for x in a if any(json_equal(x, y) for y in b)]
    if key == "type":
        both = _type_intersection(a, b)
        return (True, both) if both is not None else (False, None)
    if key == "allOf" and isinstance(a, list) and isinstance(b, list):
        return True, [*copy.deepcopy(a), *copy.deepcopy(b)]
    if key == "uniqueItems" and isinstance(a, bool) and isinstance(b, bool):
        return True, a or b
    if key == "dependentRequired" and isinstance(a, dict) and isinstance(b, dict):
        out = copy.deepcopy(a)
        for name, names in b.items():
            ok, merged = _merge_keyword("required", out.get(name, []), names)
            out[name] = merged if ok else names
        return True, out
    if key == "dependentSchemas" and isinstance(a, dict) and isinstance(b, dict):
        out = copy.deepcopy(a)
        for name, schema in b.items():
            out[name] = combine(out[name], schema) if name in out else copy.deepcopy(schema)
        return True, out
    return False, None


def _merge_properties(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """The properties group of both sides as one, or None when that would not be exact."""
    open_a = "patternProperties" in a or "additionalProperties" in a
    open_b = "patternProperties" in b or "additionalProperties" in b
    if open_a and open_b:
        return None
    closed, other = (a, b) if open_a else (b, a)
    if (open_a or open_b) and not set(other.get("properties", {})) <= set(
        closed.get("properties", {})
    ):
        return None  # a name would stop counting as additional
    if not all(isinstance(x.get("properties", {}), dict) for x in (a, b)):
        return None
    props = copy.deepcopy(a.get("properties", {}))
    for name, schema in b.get("properties", {}).items():
        props[name] = combine(props[name], schema) if name in props else copy.deepcopy(schema)
    out = {k: copy.deepcopy(v) for k, v in closed.items() if k != "properties"}
    return {"properties": props, **out}


def combine(referenced: Any, siblings: Any) -> Any:
    """One schema that means `referenced` and `siblings` together (both already inlined)."""
    if referenced is True or siblings is True:
        return copy.deepcopy(siblings if referenced is True else referenced)
    if referenced is False or siblings is False:
        return False
    if not isinstance(referenced, dict) or not isinstance(siblings, dict):
        return {"allOf": [copy.deepcopy(referenced), copy.deepcopy(siblings)]}
    if not siblings:
        return copy.deepcopy(referenced)
    if not referenced:
        return copy.deepcopy(siblings)
    if UNEVALUATED & (referenced.keys() | siblings.keys()):
        kept = copy.deepcopy(siblings)
        kept["allOf"] = [copy.deepcopy(referenced), *kept.get("allOf", [])]
        return kept
    out: dict[str, Any] = {}
    apart: list[dict[str, Any]] = []
    grouped = frozenset().union(*_GROUPS)
    for group in _GROUPS:
        a = {k: v for k, v in referenced.items() if k in group}
        b = {k: v for k, v in siblings.items() if k in group}
        if not (a and b):
            out.update(copy.deepcopy(a or b))
            continue
        merged = _merge_properties(a, b) if "properties" in group else None
        if merged is None:
            out.update(copy.deepcopy(a))
            apart.append(copy.deepcopy(b))
        else:
            out.update(merged)
    for key in [*referenced, *(k for k in siblings if k not in referenced)]:
        if key in grouped:
            continue
        if key not in siblings:
            out[key] = copy.deepcopy(referenced[key])
        elif key not in referenced or key in ANNOTATIONS:
            out[key] = copy.deepcopy(siblings[key])
        else:
            exact, value = _merge_keyword(key, referenced[key], siblings[key])
            if exact:
                out[key] = value
            else:
                out[key] = copy.deepcopy(referenced[key])
                apart.append({key: copy.deepcopy(siblings[key])})
    if apart:
        out["allOf"] = [*out.get("allOf", []), *apart]
    return out
