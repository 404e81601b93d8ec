"""Strict checks of Telnyx Call Control request bodies against the official SDK's param types.

`check_params(action, body)` returns a list of problems, each `"<json pointer>: <message>"`
(empty means valid). Two passes run over every body:

* a recursive walker over the SDK TypedDict's type hints (`typed_walker`). It refuses
  unknown keys at every level (pydantic's TypedDict validation drops them silently), checks
  required keys, picks the member of a union of TypedDicts by its `type`/`role` discriminator
  (or the first member that fits), walks lists item by item (pydantic validates
  `Iterable[...]` lazily), and validates each leaf (str, int, bool, Literal enums, ...) with
  a cached pydantic `TypeAdapter` in strict mode;
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
import functools
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError
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

from collector.core.pointer import child
from collector.core.telnyx_params.typed_walker import Problems, TypedDictNode, at, compile_type

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

# -- per action: the compiled walker and the pydantic adapter, cached ----------------------


@functools.cache
def _root(action: str) -> TypedDictNode:
    node = compile_type(PARAM_TYPES[action])
    assert isinstance(node, TypedDictNode)
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
        pointer = ""
        current: object = body
        for i, seg in enumerate(loc):
            if i == 0 and isinstance(seg, str):
                seg = aliases.get(seg, seg)
            if (isinstance(current, Mapping) and seg in current) or (
                isinstance(current, list) and isinstance(seg, int) and seg < len(current)
            ):
                current = current[seg]
            elif i == len(loc) - 1 and msg == "Field required":
                pass  # a missing key is not in the data, but it is in the pointer
            else:
                continue  # a union member's tag, not a place in the body
            pointer = child(pointer, seg)
        out.append(f"{at(pointer)}: {msg}")
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
                out.append(f"{child(pointer, k)}: $ref is not allowed; inline the schema")
            else:
                _find_refs(v, child(pointer, k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _find_refs(v, child(pointer, i), out)


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
