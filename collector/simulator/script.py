"""What the simulated caller says and does: the `--answers FILE` format.

The simple form is a JSON object of field -> value, the answers the caller gives:

    {"name": "Maria Gonzalez", "date_of_birth": "1987-04-12", "email": "maria@example.com"}

The rich form extends it compatibly. An object is read as a rich script when it has an
`answers` key, or when every one of its keys is one of the keys below (otherwise every key
is a field name); in a rich script an unknown key is an error.

    {
      "answers":  {"name": "Maria Gonzalez", "email": "maria@example"},
      "attempts": [{}, {"email": "maria@example.com"}],
      "silent":   ["reason_for_call"],
      "keypad":   {"date_of_birth": "19870412#"},
      "say":      {"name": "It's Maria, Maria Gonzalez."},
      "hangup":   "during_gather",
      "hangup_after": 2,
      "callee":   "person"
    }

* `answers` (object): field -> value. Values are passed through exactly as written (the
  simulated voice AI is a dumb pipe; the server validates), so a wrong value tests a re-ask.
* `attempts` (list of objects): answers per AI gather on the call. Gather N uses
  `attempts[N-1]` merged over `answers`; gathers past the end of the list use `answers`.
  Give a wrong email first and a right one on the re-ask with `[{"email": "bad"}, {}]`
  plus `"answers": {"email": "good@example.com"}`.
* `silent` (list of field names): the caller never answers these by voice.
* `keypad`: digits for keypad gathers (`gather`, `gather_using_speak`,
  `gather_using_audio`). Either a list of digit strings used by successive keypad gathers
  in order (`["2", "1"]`: the first gather gets 2, the second 1), or an object of field ->
  digits (or -> a list of digit strings, for successive gathers of that field). The field
  of a gather is found from its `client_state` (a `field` key, or a `k`/`kind`/`step`
  naming one of the object's keys, e.g. `"confirm"`), else from the field's name, title or
  description appearing in the spoken prompt, else the next unused key. A `#` (or the
  gather's `terminating_digit`) ends the entry. A read-back confirmation with nothing
  scripted is confirmed with `1`; any other keypad gather with nothing scripted ends with
  status `timeout`.
* `say` (object): field -> how the answer is spoken in the transcript. By default the
  value is spoken naturally ("April 12, 1987", "maria dot gonzalez at example dot com").
* `hangup`: `"before_answer"` (inbound: the caller hangs up while ringing; outbound: no
  answer), `"during_gather"` (the caller hangs up during the first AI gather, after
  `hangup_after` answered fields, default 1), or `"after_gather"` (the caller hangs up as
  soon as the first AI gather has ended).
* `hangup_after` (int): hang up during the first AI gather once this many fields have
  been answered (implies `"hangup": "during_gather"`).
* `callee` (outbound calls only): who the dialled number reaches. `"person"` (the
  default: answers, and machine detection says human; then the script above plays),
  `"voicemail"` (answers, detection says machine, the greeting ends with a beep; asked
  questions anyway, it says nothing), `"no_answer"` (rings, then hangs up with cause
  `timeout`), `"busy"` (`user_busy`) or `"rejected"` (`call_rejected`).

A field name the form does not have (in `answers`, `attempts`, `silent`, `say` or a
field-keyed `keypad`) is an error with a did-you-mean, never silently ignored.

A field with no scripted answer is answered with the first of its schema's `examples`
(else its `default`, `const` or first `enum` value), so a form that ships examples needs
no script at all. With nothing to say, the caller answers "I'm not sure."
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from collector.errors import ScriptError

__all__ = ["CALLEES", "RICH_KEYS", "CallScript", "ScriptError"]

RICH_KEYS = frozenset(
    {"answers", "attempts", "silent", "keypad", "say", "hangup", "hangup_after", "callee"}
)
CALLEES = ("person", "voicemail", "no_answer", "busy", "rejected")
# keypad script keys that name a step of the call, not a field
KEYPAD_STEPS = frozenset({"confirm", "choose"})


class CallScript(BaseModel):
    """The scripted caller's answers and behaviour for one call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    answers: dict[str, Any] = Field(default_factory=dict)
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    silent: list[str] = Field(default_factory=list)
    keypad: dict[str, str | list[str]] | list[str] = Field(default_factory=list)
    say: dict[str, str] = Field(default_factory=dict)
    hangup: Literal["before_answer", "during_gather", "after_gather"] | None = None
    hangup_after: int | None = Field(default=None, ge=0)
    callee: Literal["person", "voicemail", "no_answer", "busy", "rejected"] = "person"

    @field_validator("keypad")
    @classmethod
    def _digits_only(
        cls, value: dict[str, str | list[str]] | list[str]
    ) -> dict[str, str | list[str]] | list[str]:
        entries: list[str] = []
        if isinstance(value, dict):
            for v in value.values():
                entries.extend([v] if isinstance(v, str) else v)
        else:
            entries = list(value)
        for digits in entries:
            bad = set(digits) - set("0123456789*#ABCDabcd")
            if bad:
                raise ValueError(f"keypad entries may hold only 0-9, *, #, A-D; got {digits!r}")
        return value

    @classmethod
    def parse(cls, obj: Any) -> CallScript:
        """Read a script from its JSON object (simple or rich form), or pass one through."""
        if obj is None:
            return cls()
        if isinstance(obj, CallScript):
            return obj
        if not isinstance(obj, Mapping):
            raise ScriptError("a caller script is a JSON object (field -> value, or a rich script)")
        keys = set(obj)
        if "answers" in keys or (keys and keys <= RICH_KEYS):
            unknown = sorted(keys - RICH_KEYS)
            if unknown:
                hints = []
                for key in unknown:
                    close = difflib.get_close_matches(key, sorted(RICH_KEYS), n=1)
                    hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                raise ScriptError(
                    f"unknown key(s) in the caller script: {', '.join(hints)}; "
                    f"known: {', '.join(sorted(RICH_KEYS))}"
                )
            try:
                return cls.model_validate(dict(obj))
            except ValidationError as exc:
                problems = "; ".join(
                    f"/{'/'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                )
                raise ScriptError(f"bad caller script: {problems}") from exc
        return cls(answers=dict(obj))

    @classmethod
    def load(cls, path: str | Path) -> CallScript:
        """Read a script from a JSON file (`collector simulate --answers FILE`)."""
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ScriptError(f"{path}: {exc}") from exc
        try:
            return cls.parse(obj)
        except ScriptError as exc:
            raise ScriptError(f"{path}: {exc}") from exc

    def check_fields(self, fields: Iterable[str], form: str = "the form") -> CallScript:
        """This script, or ScriptError naming every field it mentions that the form lacks."""
        known = list(fields)
        named: list[str] = [*self.answers, *self.silent, *self.say]
        for attempt in self.attempts:
            named.extend(attempt)
        if isinstance(self.keypad, dict):
            named.extend(k for k in self.keypad if k not in KEYPAD_STEPS)
        unknown = [n for n in dict.fromkeys(named) if n not in known]
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ScriptError(
                f"the caller script names field(s) {form} does not have: {', '.join(hints)}; "
                f"its fields: {', '.join(known)}"
            )
        return self

    # -- what the caller does ---------------------------------------------------------------

    def answers_for_attempt(self, attempt: int) -> dict[str, Any]:
        """The answers for the AI gather number `attempt` (1-based) on the call."""
        if 1 <= attempt <= len(self.attempts):
            return {**self.answers, **self.attempts[attempt - 1]}
        return dict(self.answers)

    @property
    def hangs_up_during_gather(self) -> bool:
        return self.hangup == "during_gather" or (
            self.hangup is None and self.hangup_after is not None
        )
