"""Inline every `$ref` of a schema and strip the keywords Telnyx should not see.

The walk knows which keys are keywords and which are names: under `properties` a key
called `$comment` or `x-collector` is a field, and under `enum`, `examples`, `const` or
`default` everything is data, copied as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from referencing import Registry
from referencing.exceptions import InvalidAnchor, NoSuchAnchor, PointerToNowhere, Unresolvable
from referencing.jsonschema import DRAFT202012

from collector.core.forms.merge import combine
from collector.core.forms.vocabulary import KEYWORD
from collector.core.pointer import escape

# Keywords whose value is a map of name -> schema, a schema, or a list of schemas.
SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
SCHEMA_VALUES = frozenset(
    {
        "items",
        "additionalItems",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "additionalProperties",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contentSchema",
    }
)
SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
STRIPPED = frozenset(
    {
        "$ref",
        "$defs",
        "definitions",
        "$schema",
        "$id",
        "$comment",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$vocabulary",
        KEYWORD,
    }
)

# An inlined schema this large means refs that multiply: refuse rather than hang.
MAX_NODES = 10_000


def subschemas(node: Any, pointer: str = "") -> Iterator[tuple[str, str, Any]]:
    """(keyword, pointer, subschema) for each schema directly inside a schema object."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = f"{pointer}/{escape(key)}"
        if key in SCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield key, f"{here}/{escape(name)}", sub
        elif key in SCHEMA_VALUES:
            if isinstance(value, list):  # draft 4-7 `items: [...]`
                for i, sub in enumerate(value):
                    yield key, f"{here}/{i}", sub
            else:
                yield key, here, value
        elif key in SCHEMA_LISTS and isinstance(value, list):
            for i, sub in enumerate(value):
                yield key, f"{here}/{i}", sub


def keyword_locations(node: Any, keyword: str, pointer: str = "") -> Iterator[str]:
    """Pointers of every schema object (this one included) that uses keyword."""
    if not isinstance(node, dict):
        return
    if keyword in node:
        yield pointer
    for _, where, sub in subschemas(node, pointer):
        yield from keyword_locations(sub, keyword, where)


@dataclass
class Inliner:
    """Inline one document against a registry holding it and the shared definitions.

    `where(uri)` names the file of a resource for problem lines. Problems are
    (file, pointer, message) triples; the result is usable only when there are none.
    """

    registry: Registry[Any]
    where: Callable[[str], str]
    broken: frozenset[str] = frozenset()
    looked_up: str = "the forms and their shared definitions"
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    _nodes: int = 0

    def inline(self, contents: Any, uri: str) -> Any:
        """The document at uri, fully inlined and stripped."""
        file = self.where(uri)
        if isinstance(contents, dict) and isinstance(contents.get("$id"), str):
            uri = urljoin(uri, contents["$id"])  # relative $refs resolve against the $id
        resolver = self.registry.resolver(base_uri=uri)
        return self._walk(contents, resolver, uri, file, "", (id(contents),))

    def _walk(
        self, node: Any, resolver: Any, base: str, file: str, pointer: str, stack: tuple[int, ...]
    ) -> Any:
        self._nodes += 1
        if self._nodes == MAX_NODES:
            self.problems.append(
                (file, pointer or "/", "the schema grows too large when its $refs are inlined")
            )
        if self._nodes >= MAX_NODES or not isinstance(node, dict):
            return copy.deepcopy(node)
        if isinstance(node.get("$id"), str) and pointer:
            resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
            base = urljoin(base, node["$id"])
        target: Any = True
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = self._follow(ref, resolver, base, file, f"{pointer}/$ref", stack)
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = f"{pointer}/{escape(key)}"
            if key in STRIPPED:
                continue
            if key in SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {
                    name: self._walk(sub, resolver, base, file, f"{here}/{escape(name)}", stack)
                    for name, sub in value.items()
                }
            elif key in SCHEMA_VALUES or (key in SCHEMA_LISTS and isinstance(value, list)):
                if isinstance(value, list):
                    out[key] = [
                        self._walk(sub, resolver, base, file, f"{here}/{i}", stack)
                        for i, sub in enumerate(value)
                    ]
                else:
                    out[key] = self._walk(value, resolver, base, file, here, stack)
            else:
                out[key] = copy.deepcopy(value)
        for key in ("$dynamicRef", "$recursiveRef"):
            if key in node:
                self.problems.append(
                    (
                        file,
                        f"{pointer}/{escape(key)}",
                        f"{key} cannot be inlined (its target depends on where the schema "
                        "is used); use $ref",
                    )
                )
        if target is None:
            return out
        if target is False:
            return {**out, "not": {}}
        # A `$ref` applies together with the keywords beside it (2020-12 section 8.2.3.1).
        return combine(target, out)

    def _follow(
        self, ref: str, resolver: Any, base: str, file: str, pointer: str, stack: tuple[int, ...]
    ) -> Any:
        absolute = urljoin(base, ref)
        document, fragment = urldefrag(absolute)
        if document in self.broken:
            self.problems.append(
                (file, pointer, f"$ref '{ref}' points into {self.where(document)}, which is broken")
            )
            return None
        try:
            resolved = resolver.lookup(ref)
        except PointerToNowhere:
            self.problems.append(
                (
                    file,
                    pointer,
                    f"cannot resolve $ref '{ref}': there is no '{unquote(fragment)}' "
                    f"in {self.where(document)}",
                )
            )
            return None
        except (NoSuchAnchor, InvalidAnchor):
            self.problems.append(
                (
                    file,
                    pointer,
                    f"cannot resolve $ref '{ref}': there is no anchor '{fragment}' "
                    f"in {self.where(document)}",
                )
            )
            return None
        except Unresolvable:
            self.problems.append(
                (
                    file,
                    pointer,
                    f"cannot resolve $ref '{ref}': no schema at {self.where(document)} "
                    f"(looked up in {self.looked_up}, by path or $id)",
                )
            )
            return None
        except Exception as exc:  # malformed documents make referencing raise anything
            self.problems.append((file, pointer, f"cannot resolve $ref '{ref}': {exc}"))
            return None
        contents = resolved.contents
        if id(contents) in stack:
            self.problems.append(
                (
                    file,
                    pointer,
                    f"recursive $ref '{ref}': the schema contains itself, so it cannot be inlined",
                )
            )
            return None
        target_file = self.where(document)
        target_pointer = unquote(fragment) if fragment.startswith("/") else ""
        if not fragment.startswith("/") and fragment:
            target_file, target_pointer = file, pointer  # an anchor: no pointer to show
        before = len(self.problems)
        inlined = self._walk(
            contents,
            resolved.resolver,
            document,
            target_file,
            target_pointer,
            (*stack, id(contents)),
        )
        if len(self.problems) > before and target_file != file:
            self.problems.append(
                (file, pointer, f"$ref '{ref}' cannot be inlined: see {target_file}")
            )
        return inlined
