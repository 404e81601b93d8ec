"""A strict walker over the SDK's TypedDict param types, compiled once per type and cached.

`compile_type(tp)` turns a type hint into a node whose `check(value, pointer, out)` appends
every problem as `"<json pointer>: <message>"`. It refuses unknown keys at every level
(pydantic's TypedDict validation drops them silently), checks required keys, reads wire
aliases from the SDK's `PropertyInfo` annotations, picks the member of a union of TypedDicts
by its `type`/`role` discriminator (or the first member that fits), walks lists item by item
(pydantic validates `Iterable[...]` lazily), and validates each leaf (str, int, bool, Literal
enums, ...) with a cached pydantic `TypeAdapter` in strict mode. `to_python(value)` renames
wire aliases back to the TypedDict's names, for pydantic.
"""

from __future__ import annotations

import collections.abc
import contextlib
import types
import typing
from typing import Any

import typing_extensions as te
from pydantic import TypeAdapter, ValidationError
from telnyx._utils import PropertyInfo

from collector.core.pointer import child

__all__ = ["Problems", "TypedDictNode", "at", "compile_type"]

# the keys whose Literal values tell the members of a union of TypedDicts apart
_DISCRIMINATORS = ("type", "role")

# -- JSON pointers -----------------------------------------------------------------------


def at(pointer: str) -> str:
    """The pointer as shown in a problem: the root reads `/`."""
    return pointer or "/"


# -- the walker: one compiled node per type, cached -----------------------------------------

Problems = list[str]


class _Node:
    def check(self, value: Any, pointer: str, out: Problems) -> None:
        raise NotImplementedError

    def to_python(self, value: Any) -> Any:
        """The value as the SDK's TypedDicts name it (wire aliases renamed), for pydantic."""
        return value


class _AnyNode(_Node):
    def check(self, value: Any, pointer: str, out: Problems) -> None:
        return None


class _LeafNode(_Node):
    """A type with no TypedDict inside: pydantic validates it, strictly."""

    def __init__(self, tp: Any) -> None:
        self.adapter: TypeAdapter[Any] = TypeAdapter(tp)

    def check(self, value: Any, pointer: str, out: Problems) -> None:
        try:
            self.adapter.validate_python(value, strict=True)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                p = pointer
                for seg in err["loc"]:
                    if isinstance(seg, int) or _is_plain_key(seg):
                        p = child(p, seg)
                out.append(f"{at(p)}: {err['msg']}")


def _is_plain_key(seg: Any) -> bool:
    # pydantic names union members in `loc` ("str", "list[str]", "function-after[...]");
    # real keys in these bodies are identifiers.
    return isinstance(seg, str) and seg.isidentifier() and seg not in _UNION_TAGS


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})


class _ListNode(_Node):
    def __init__(self, item: _Node) -> None:
        self.item = item

    def check(self, value: Any, pointer: str, out: Problems) -> None:
        if not isinstance(value, (list, tuple)):
            out.append(f"{at(pointer)}: Input should be a valid list")
            return
        for i, v in enumerate(value):
            self.item.check(v, child(pointer, i), out)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [self.item.to_python(v) for v in value]
        return value


class _DictNode(_Node):
    def __init__(self, key: Any, item: _Node) -> None:
        self.key = _LeafNode(key) if key not in (str, Any, object) else None
        self.item = item

    def check(self, value: Any, pointer: str, out: Problems) -> None:
        if not isinstance(value, dict):
            out.append(f"{at(pointer)}: Input should be a valid dictionary")
            return
        for k, v in value.items():
            if not isinstance(k, str):
                out.append(f"{at(pointer)}: keys should be strings")
                continue
            if self.key is not None:
                self.key.check(k, child(pointer, k), out)
            self.item.check(v, child(pointer, k), out)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.item.to_python(v) for k, v in value.items()}
        return value


class _Field(typing.NamedTuple):
    name: str  # the TypedDict's (Python) name
    node: _Node
    required: bool


class TypedDictNode(_Node):
    def __init__(self, td: type) -> None:
        self.td = td
        self.name = td.__name__
        self.fields: dict[str, _Field] = {}  # by wire name
        self.extra: _Node | None = None
        self.required: tuple[str, ...] = ()
        self.discriminators: dict[str, frozenset[Any]] = {}

    def compile(self) -> None:
        hints = typing.get_type_hints(self.td, include_extras=True)
        total = getattr(self.td, "__total__", True)
        required: list[str] = []
        for pyname, hint in hints.items():
            is_required = total
            wire = pyname
            tp = hint
            while True:
                origin = typing.get_origin(tp)
                if origin in (typing.Required, te.Required):
                    is_required = True
                    tp = typing.get_args(tp)[0]
                elif origin in (typing.NotRequired, te.NotRequired):
                    is_required = False
                    tp = typing.get_args(tp)[0]
                elif origin is typing.Annotated:
                    for meta in tp.__metadata__:
                        if isinstance(meta, PropertyInfo) and meta.alias:
                            wire = meta.alias
                    tp = typing.get_args(tp)[0]
                elif origin in (te.ReadOnly,):
                    tp = typing.get_args(tp)[0]
                else:
                    break
            self.fields[wire] = _Field(pyname, compile_type(tp), is_required)
            if is_required:
                required.append(wire)
            if typing.get_origin(tp) is typing.Literal and wire in _DISCRIMINATORS:
                self.discriminators[wire] = frozenset(typing.get_args(tp))
        self.required = tuple(required)
        extra = getattr(self.td, "__extra_items__", te.NoExtraItems)
        if extra is not te.NoExtraItems and not getattr(self.td, "__closed__", False):
            self.extra = compile_type(extra)

    def check(self, value: Any, pointer: str, out: Problems) -> None:
        if not isinstance(value, dict):
            out.append(f"{at(pointer)}: Input should be an object ({self.name})")
            return
        for key, v in value.items():
            field = self.fields.get(key)
            if field is None:
                if self.extra is not None:
                    self.extra.check(v, child(pointer, key), out)
                else:
                    out.append(f"{child(pointer, key)}: unknown key")
                continue
            field.node.check(v, child(pointer, key), out)
        for key in self.required:
            if key not in value:
                out.append(f"{child(pointer, key)}: Field required")

    def to_python(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        result = {}
        for key, v in value.items():
            field = self.fields.get(key)
            if field is None:
                result[key] = v
            else:
                result[field.name] = field.node.to_python(v)
        return result


class _UnionNode(_Node):
    def __init__(self, members: list[_Node], nullable: bool) -> None:
        self.members = members
        self.nullable = nullable
        self.typed = [m for m in members if isinstance(m, TypedDictNode)]

    def _candidates(self, value: Any, pointer: str, out: Problems) -> list[_Node] | None:
        if not isinstance(value, dict) or not self.typed:
            return [m for m in self.members if not isinstance(m, TypedDictNode)] or self.members
        for disc in _DISCRIMINATORS:
            if disc not in value or not all(disc in m.discriminators for m in self.typed):
                continue
            chosen: list[_Node] = [m for m in self.typed if value[disc] in m.discriminators[disc]]
            if not chosen:
                allowed = sorted({v for m in self.typed for v in m.discriminators[disc]}, key=str)
                shown = ", ".join(repr(a) for a in allowed[:-1])
                shown = f"{shown} or {allowed[-1]!r}" if shown else repr(allowed[-1])
                out.append(f"{child(pointer, disc)}: Input should be {shown}")
                return None
            return chosen
        return list(self.typed) + [m for m in self.members if not isinstance(m, TypedDictNode)]

    def check(self, value: Any, pointer: str, out: Problems) -> None:
        if value is None and self.nullable:
            return
        candidates = self._candidates(value, pointer, out)
        if candidates is None:
            return
        best: Problems | None = None
        for member in candidates:
            problems: Problems = []
            member.check(value, pointer, problems)
            if not problems:
                return
            if best is None or len(problems) < len(best):
                best = problems
        out.extend(best or [f"{at(pointer)}: Input matches no allowed type"])

    def to_python(self, value: Any) -> Any:
        for member in self._candidates(value, "", []) or ():
            problems: Problems = []
            member.check(value, "", problems)
            if not problems:
                return member.to_python(value)
        return value


_SEQUENCES = {
    collections.abc.Iterable,
    collections.abc.Sequence,
    collections.abc.Collection,
    list,
    tuple,
    set,
    frozenset,
}
_NODES: dict[Any, _Node] = {}


def compile_type(tp: Any) -> _Node:
    try:
        cached = _NODES.get(tp)
    except TypeError:  # unhashable annotation
        cached = None
    if cached is not None:
        return cached
    node = _build(tp)
    with contextlib.suppress(TypeError):  # unhashable annotation
        _NODES[tp] = node
    return node


def _contains_typeddict(tp: Any, seen: frozenset[int] = frozenset()) -> bool:
    if te.is_typeddict(tp):
        return True
    if id(tp) in seen:
        return False
    return any(_contains_typeddict(a, seen | {id(tp)}) for a in typing.get_args(tp))


def _build(tp: Any) -> _Node:
    origin = typing.get_origin(tp)
    if tp in (Any, object):
        return _AnyNode()
    if origin is typing.Annotated or origin in (typing.Required, te.Required, te.NotRequired):
        return compile_type(typing.get_args(tp)[0])
    if te.is_typeddict(tp):
        node = TypedDictNode(tp)
        _NODES[tp] = node  # before compiling fields: TypedDicts may refer to themselves
        node.compile()
        return node
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        members = [a for a in args if a is not type(None)]
        if not any(_contains_typeddict(a) for a in members):
            return _LeafNode(tp)
        return _UnionNode([compile_type(a) for a in members], nullable=len(members) < len(args))
    if origin in _SEQUENCES and origin not in (tuple,):
        (item,) = typing.get_args(tp) or (Any,)
        return _ListNode(compile_type(item))
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        key, item = typing.get_args(tp) or (str, Any)
        return _DictNode(key, compile_type(item))
    if tp in (list, tuple):
        return _ListNode(_AnyNode())
    if tp is dict:
        return _DictNode(str, _AnyNode())
    return _LeafNode(tp)
