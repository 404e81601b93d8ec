"""Strict checks of Telnyx Call Control request bodies against the official SDK's param types.

`check_params(action, body)` returns a list of problems, each `"<json pointer>: <message>"`
(empty means valid). Two passes run over every body:

* a recursive walker over the SDK TypedDict's type hints. It refuses unknown keys at every
  level (pydantic's TypedDict validation drops them silently), checks required keys, picks
  the member of a union of TypedDicts by its `type`/`role` discriminator (or the first member
  that fits), walks lists item by item (pydantic validates `Iterable[...]` lazily), and
  validates each leaf (str, int, bool, Literal enums, ...) with a cached pydantic
  `TypeAdapter` in strict mode;
* `pydantic.TypeAdapter(TD)` over the whole body (wire aliases such as `from` renamed to the
  SDK's `from_`, lazy iterators consumed recursively) as a safety net: anything it refuses
  that the walker accepted is reported too.

On top of the types it enforces what the SDK documents but does not type: the 3,000-char
limits on `payload`, `invalid_payload`, `greeting` and `gather_ended_speech`, base64
`client_state`, and a JSON-Schema-looking `parameters` object without `$ref` for
`gather_using_ai`.
"""

from __future__ import annotations

import base64
import binascii
import collections.abc
import contextlib
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

import typing_extensions as te
from pydantic import TypeAdapter, ValidationError
from telnyx._utils import PropertyInfo
from telnyx.types.call_dial_params import CallDialParams
from telnyx.types.calls.action_add_ai_assistant_messages_params import (
    ActionAddAIAssistantMessagesParams,
)
from telnyx.types.calls.action_answer_params import ActionAnswerParams
from telnyx.types.calls.action_gather_params import ActionGatherParams
from telnyx.types.calls.action_gather_using_ai_params import ActionGatherUsingAIParams
from telnyx.types.calls.action_gather_using_audio_params import ActionGatherUsingAudioParams
from telnyx.types.calls.action_gather_using_speak_params import ActionGatherUsingSpeakParams
from telnyx.types.calls.action_hangup_params import ActionHangupParams
from telnyx.types.calls.action_speak_params import ActionSpeakParams
from telnyx.types.calls.action_start_ai_assistant_params import ActionStartAIAssistantParams
from telnyx.types.calls.action_stop_ai_assistant_params import ActionStopAIAssistantParams
from telnyx.types.calls.action_stop_gather_params import ActionStopGatherParams
from telnyx.types.calls.action_update_client_state_params import ActionUpdateClientStateParams

__all__ = ["ACTIONS", "PARAM_TYPES", "TEXT_LIMIT", "check_params"]

PARAM_TYPES: Mapping[str, type] = {
    "answer": ActionAnswerParams,
    "hangup": ActionHangupParams,
    "speak": ActionSpeakParams,
    "gather": ActionGatherParams,
    "gather_using_speak": ActionGatherUsingSpeakParams,
    "gather_using_audio": ActionGatherUsingAudioParams,
    "gather_using_ai": ActionGatherUsingAIParams,
    "gather_stop": ActionStopGatherParams,
    "ai_assistant_start": ActionStartAIAssistantParams,
    "ai_assistant_stop": ActionStopAIAssistantParams,
    "ai_assistant_add_messages": ActionAddAIAssistantMessagesParams,
    "client_state_update": ActionUpdateClientStateParams,
    "dial": CallDialParams,
}
ACTIONS: frozenset[str] = frozenset(PARAM_TYPES)

TEXT_LIMIT = 3000
_LIMITED_TEXT = ("payload", "invalid_payload", "greeting", "gather_ended_speech")
_DISCRIMINATORS = ("type", "role")

# -- JSON pointers -----------------------------------------------------------------------


def _ptr(base: str, segment: str | int) -> str:
    return f"{base}/{str(segment).replace('~', '~0').replace('/', '~1')}"


def _at(pointer: str) -> str:
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
                        p = _ptr(p, seg)
                out.append(f"{_at(p)}: {err['msg']}")


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
            out.append(f"{_at(pointer)}: Input should be a valid list")
            return
        for i, v in enumerate(value):
            self.item.check(v, _ptr(pointer, i), out)

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
            out.append(f"{_at(pointer)}: Input should be a valid dictionary")
            return
        for k, v in value.items():
            if not isinstance(k, str):
                out.append(f"{_at(pointer)}: keys should be strings")
                continue
            if self.key is not None:
                self.key.check(k, _ptr(pointer, k), out)
            self.item.check(v, _ptr(pointer, k), out)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.item.to_python(v) for k, v in value.items()}
        return value


class _Field(typing.NamedTuple):
    name: str  # the TypedDict's (Python) name
    node: _Node
    required: bool


class _TypedDictNode(_Node):
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
            self.fields[wire] = _Field(pyname, _compile(tp), is_required)
            if is_required:
                required.append(wire)
            if typing.get_origin(tp) is typing.Literal and wire in _DISCRIMINATORS:
                self.discriminators[wire] = frozenset(typing.get_args(tp))
        self.required = tuple(required)
        extra = getattr(self.td, "__extra_items__", te.NoExtraItems)
        if extra is not te.NoExtraItems and not getattr(self.td, "__closed__", False):
            self.extra = _compile(extra)

    def check(self, value: Any, pointer: str, out: Problems) -> None:
        if not isinstance(value, dict):
            out.append(f"{_at(pointer)}: Input should be an object ({self.name})")
            return
        for key, v in value.items():
            field = self.fields.get(key)
            if field is None:
                if self.extra is not None:
                    self.extra.check(v, _ptr(pointer, key), out)
                else:
                    out.append(f"{_ptr(pointer, key)}: unknown key")
                continue
            field.node.check(v, _ptr(pointer, key), out)
        for key in self.required:
            if key not in value:
                out.append(f"{_ptr(pointer, key)}: Field required")

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
        self.typed = [m for m in members if isinstance(m, _TypedDictNode)]

    def _candidates(self, value: Any, pointer: str, out: Problems) -> list[_Node] | None:
        if not isinstance(value, dict) or not self.typed:
            return [m for m in self.members if not isinstance(m, _TypedDictNode)] or self.members
        for disc in _DISCRIMINATORS:
            if disc not in value or not all(disc in m.discriminators for m in self.typed):
                continue
            chosen: list[_Node] = [m for m in self.typed if value[disc] in m.discriminators[disc]]
            if not chosen:
                allowed = sorted({v for m in self.typed for v in m.discriminators[disc]}, key=str)
                shown = ", ".join(repr(a) for a in allowed[:-1])
                shown = f"{shown} or {allowed[-1]!r}" if shown else repr(allowed[-1])
                out.append(f"{_ptr(pointer, disc)}: Input should be {shown}")
                return None
            return chosen
        return list(self.typed) + [m for m in self.members if not isinstance(m, _TypedDictNode)]

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
        out.extend(best or [f"{_at(pointer)}: Input matches no allowed type"])

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


def _compile(tp: Any) -> _Node:
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
        return _compile(typing.get_args(tp)[0])
    if te.is_typeddict(tp):
        node = _TypedDictNode(tp)
        _NODES[tp] = node  # before compiling fields: TypedDicts may refer to themselves
        node.compile()
        return node
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        members = [a for a in args if a is not type(None)]
        if not any(_contains_typeddict(a) for a in members):
            return _LeafNode(tp)
        return _UnionNode([_compile(a) for a in members], nullable=len(members) < len(args))
    if origin in _SEQUENCES and origin not in (tuple,):
        (item,) = typing.get_args(tp) or (Any,)
        return _ListNode(_compile(item))
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        key, item = typing.get_args(tp) or (str, Any)
        return _DictNode(key, _compile(item))
    if tp in (list, tuple):
        return _ListNode(_AnyNode())
    if tp is dict:
        return _DictNode(str, _AnyNode())
    return _LeafNode(tp)


@functools.cache
def _root(action: str) -> _TypedDictNode:
    node = _compile(PARAM_TYPES[action])
    assert isinstance(node, _TypedDictNode)
    return node


@functools.cache
def _adapter(action: str) -> TypeAdapter[Any]:
    return TypeAdapter(PARAM_TYPES[action])


# -- the pydantic pass ----------------------------------------------------------------------


def _consume(value: Any, loc: tuple[Any, ...], errors: list[tuple[tuple[Any, ...], str]]) -> None:
    """Force pydantic's lazily validated `Iterable[...]` fields, recursively."""
    if isinstance(value, dict):
        for k, v in value.items():
            _consume(v, (*loc, k), errors)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _consume(v, (*loc, i), errors)
    elif type(value).__name__ == "ValidatorIterator":
        i = 0
        it = iter(value)
        while True:
            try:
                item = next(it)
            except StopIteration:
                break
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    errors.append(((*loc, *err["loc"]), err["msg"]))
                break
            _consume(item, (*loc, i), errors)
            i += 1


def _pydantic_problems(action: str, body: Mapping[str, Any]) -> Problems:
    root = _root(action)
    errors: list[tuple[tuple[Any, ...], str]] = []
    try:
        validated = _adapter(action).validate_python(root.to_python(dict(body)), strict=True)
    except ValidationError as exc:
        errors = [(tuple(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
    else:
        _consume(validated, (), errors)
    aliases = {f.name: wire for wire, f in root.fields.items()}
    out: Problems = []
    for loc, msg in errors:
        pointer, current = "", body
        for i, seg in enumerate(loc):
            if i == 0 and isinstance(seg, str):
                seg = aliases.get(seg, seg)
            in_map = isinstance(current, Mapping) and seg in current
            in_list = isinstance(current, list) and isinstance(seg, int) and seg < len(current)
            if in_map or in_list:
                current = current[seg]
            elif i == len(loc) - 1 and msg == "Field required":
                pass  # a missing key is not in the data, but it is in the pointer
            else:
                continue  # a union member's tag, not a place in the body
            pointer = _ptr(pointer, seg)
        out.append(f"{_at(pointer)}: {msg}")
    return out


# -- what the SDK documents but does not type -----------------------------------------------


def _documented_limits(action: str, body: Mapping[str, Any], out: Problems) -> None:
    for key in _LIMITED_TEXT:
        value = body.get(key)
        if isinstance(value, str) and len(value) > TEXT_LIMIT:
            out.append(f"/{key}: at most {TEXT_LIMIT} characters allowed, got {len(value)}")
    assistant = body.get("assistant")
    if isinstance(assistant, Mapping):
        greeting = assistant.get("greeting")
        if isinstance(greeting, str) and len(greeting) > TEXT_LIMIT:
            out.append(
                f"/assistant/greeting: at most {TEXT_LIMIT} characters allowed, got {len(greeting)}"
            )
    state = body.get("client_state")
    if isinstance(state, str):
        try:
            base64.b64decode(state, validate=True)
        except (binascii.Error, ValueError):
            out.append("/client_state: must be a valid Base-64 encoded string")
    if action == "gather_using_ai" and "parameters" in body:
        _check_json_schema(body["parameters"], out)


def _check_json_schema(parameters: Any, out: Problems) -> None:
    if not isinstance(parameters, Mapping):
        return  # the type checks already say so
    if parameters.get("type") != "object":
        out.append('/parameters/type: should be "object" (a JSON Schema object)')
    props = parameters.get("properties")
    if not isinstance(props, Mapping):
        out.append("/parameters/properties: should be an object of field schemas")
    required = parameters.get("required")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(r, str) for r in required)
    ):
        out.append("/parameters/required: should be a list of field names")
    _find_refs(parameters, "/parameters", out)


def _find_refs(value: Any, pointer: str, out: Problems) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == "$ref":
                out.append(f"{_ptr(pointer, k)}: $ref is not allowed; inline the schema")
            else:
                _find_refs(v, _ptr(pointer, k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _find_refs(v, _ptr(pointer, i), out)


# -- the entry point ------------------------------------------------------------------------


def check_params(action: str, body: Mapping[str, Any]) -> list[str]:
    """Every problem with `body` as the request body of Telnyx command `action`.

    Each problem reads `"<json pointer>: <message>"`; an empty list means the body is valid.
    `action` is the path segment (`gather_using_ai`, `gather_stop`, ...) or `dial`.
    """
    if action not in PARAM_TYPES:
        raise KeyError(f"unknown Telnyx action {action!r}; known: {', '.join(sorted(ACTIONS))}")
    if not isinstance(body, Mapping):
        return ["/: the body should be a JSON object"]
    problems: Problems = []
    _root(action).check(body, "", problems)
    _documented_limits(action, body, problems)
    if not problems:
        # The safety net: whatever pydantic refuses that the walker let through.
        problems.extend(_pydantic_problems(action, body))
    return list(dict.fromkeys(problems))
