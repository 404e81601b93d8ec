"""A field's fixed choices, from `enum` or the labelled-enum idiom of JSON Schema.

`{"oneOf": [{"const": "new_appointment", "title": "a new appointment"}, ...]}` is an
enum whose values have labels: the value is what the submission holds, the title what
a caller hears. Both idioms give `[(value, spoken label), ...]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def words(value: Any) -> str:
    """A value as it is spoken when it has no label: `new_appointment` -> "new appointment"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.replace("_", " ")
    return str(value)


def labelled(schema: Any) -> list[dict[str, Any]] | None:
    """The branches of a labelled enum (`oneOf`/`anyOf` of `const`s), or None."""
    if not isinstance(schema, Mapping):
        return None
    for key in ("oneOf", "anyOf"):
        branches = schema.get(key)
        if (
            isinstance(branches, list)
            and branches
            and all(isinstance(b, dict) and "const" in b for b in branches)
        ):
            return branches
    return None


def choices(schema: Any) -> list[tuple[Any, str]] | None:
    """[(value, spoken label)] when the schema allows only fixed values, else None."""
    if not isinstance(schema, Mapping):
        return None
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return [(value, words(value)) for value in enum]
    branches = labelled(schema)
    if branches is not None:
        out = []
        for branch in branches:
            title = branch.get("title")
            spoken = title if isinstance(title, str) and title.strip() else words(branch["const"])
            out.append((branch["const"], spoken))
        return out
    if "const" in schema:
        return [(schema["const"], words(schema["const"]))]
    return None
