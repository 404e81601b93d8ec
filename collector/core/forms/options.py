"""Check a form's `x-collector` blocks: known keys (with a did-you-mean), then values.

The values go through the vocabulary's pydantic models; the objects Telnyx takes as they
are (`voice_settings`, `assistant`, ..., `after`) also through the SDK's param types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from collector.core.forms.messages import DEFAULT_MESSAGES
from collector.core.forms.vocabulary import (
    CONFIRM_KEYS,
    DTMF_KEYS,
    FIELD_KEYS,
    FORM_KEYS,
    GATHER_OBJECT_KEYS,
    KEYWORD,
    FieldOptions,
    FormOptions,
    unknown_key,
)
from collector.core.pointer import escape, join

M = TypeVar("M", bound=BaseModel)

# Stands in for the form's own parameters when only the other gather_using_ai keys are checked.
_PLACEHOLDER_PARAMETERS = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}

_ELSEWHERE_ON_FORM = {
    key: "it is a field option: put it in a property's x-collector"
    for key in FIELD_KEYS - FORM_KEYS
}
_ELSEWHERE_ON_FIELD = {
    key: "it is a form option: put it in the form's top-level x-collector"
    for key in FORM_KEYS - FIELD_KEYS
}
_PYDANTIC_WORDS = {
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
}


def _check_params(action: str, body: Mapping[str, Any]) -> list[str]:
    try:
        from collector.core.telnyx_params import check_params
    except ImportError:  # that module is optional while it is being written
        return []
    return list(check_params(action, body))


def _split_problem(line: str) -> tuple[str, str]:
    """`/a/b: message` -> ("/a/b", "message"); a line without a pointer is about the root."""
    if line.startswith("/") and ": " in line:
        pointer, message = line.split(": ", 1)
        return pointer, message
    return "", line


class OptionsCheck:
    """The x-collector of one form; problems go to `add(pointer, message)`."""

    def __init__(self, add: Callable[[str, str], None]) -> None:
        self.add = add

    def run(self, raw: dict[str, Any]) -> tuple[FormOptions | None, dict[str, FieldOptions]]:
        """The form's options (None if they are broken) and the options of its fields."""
        options = self.form_options(raw.get(KEYWORD, {}))
        fields: dict[str, FieldOptions] = {}
        properties = raw.get("properties")
        if isinstance(properties, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and KEYWORD in sub:
                    parsed = self.field_options(name, sub[KEYWORD])
                    if parsed is not None:
                        fields[name] = parsed
        return options, fields

    def form_options(self, value: Any) -> FormOptions | None:
        base = f"/{KEYWORD}"
        if not isinstance(value, dict):
            self.add(base, "x-collector must be an object")
            return None
        known = self.known_keys(value, FORM_KEYS, base, _ELSEWHERE_ON_FORM)
        messages = known.get("messages")
        if isinstance(messages, dict):
            known["messages"] = self.known_keys(
                messages, DEFAULT_MESSAGES, f"{base}/messages", label="message"
            )
        confirm = known.get("confirm")
        if isinstance(confirm, dict):
            known["confirm"] = self.known_keys(confirm, CONFIRM_KEYS, f"{base}/confirm")
        options = self.validated(FormOptions, known, base)
        self.check_telnyx(known, base)
        return options

    def field_options(self, name: str, value: Any) -> FieldOptions | None:
        base = f"/properties/{escape(name)}/{KEYWORD}"
        if not isinstance(value, dict):
            self.add(base, "x-collector must be an object")
            return None
        known = self.known_keys(value, FIELD_KEYS, base, _ELSEWHERE_ON_FIELD)
        dtmf = known.get("dtmf")
        if isinstance(dtmf, dict):
            known["dtmf"] = self.known_keys(dtmf, DTMF_KEYS, f"{base}/dtmf")
        return self.validated(FieldOptions, known, base)

    def known_keys(
        self,
        value: dict[str, Any],
        known: Any,
        base: str,
        elsewhere: dict[str, str] | None = None,
        label: str = "key",
    ) -> dict[str, Any]:
        """The items of value whose keys are known; a problem for each other key."""
        out = {}
        for key, item in value.items():
            if key in known:
                out[key] = item
            else:
                self.add(f"{base}/{escape(key)}", unknown_key(key, known, elsewhere, label))
        return out

    def validated(self, model: type[M], value: dict[str, Any], base: str) -> M | None:
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            for error in exc.errors():
                message = _PYDANTIC_WORDS.get(error["type"], error["msg"])
                message = message.removeprefix("Value error, ")
                self.add(base + join(error["loc"]), message)
            return None

    def check_telnyx(self, known: dict[str, Any], base: str) -> None:
        objects = {k: known[k] for k in GATHER_OBJECT_KEYS if isinstance(known.get(k), dict)}
        if objects:
            body = {"parameters": _PLACEHOLDER_PARAMETERS, **objects}
            for line in _check_params("gather_using_ai", body):
                pointer, message = _split_problem(line)
                if not pointer.startswith("/parameters"):
                    self.add(base + pointer, message)
        after = known.get("after")
        if not isinstance(after, dict):
            return
        body = {k: v for k, v in after.items() if k != "max_seconds"}
        assistant = body.get("assistant")
        missing_id = not isinstance(assistant, dict) or not assistant.get("id")
        if missing_id:
            where = "/assistant/id" if isinstance(assistant, dict) else "/assistant"
            self.add(
                f"{base}/after{where}",
                "is required: the id of a stored assistant to hand the caller to",
            )
        for line in _check_params("ai_assistant_start", body):
            pointer, message = _split_problem(line)
            if missing_id and pointer in ("/assistant", "/assistant/id"):
                continue
            self.add(f"{base}/after{pointer}", message)
