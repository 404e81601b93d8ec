"""Steps of the AI gather: start it, follow its webhooks, validate its result, re-ask."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.model import FieldState, Gather, GatherKind, Message, State
from collector.core.session.step import StepBase
from collector.core.session.wording import reask_greeting

if TYPE_CHECKING:
    from collector.core.forms import Form


def ai_gather_body(
    form: Form,
    parameters: dict[str, Any],
    greeting: str | None = None,
    history: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The gather_using_ai body (without client_state and command_id)."""
    body: dict[str, Any] = {"parameters": parameters, **form.gather_options()}
    if greeting is not None:
        body["greeting"] = greeting
    if history:
        body["message_history"] = history
    body["send_partial_results"] = True
    body["send_message_history_updates"] = True
    return body


def _history_line(item: Any) -> tuple[str, str] | None:
    """(role, content) of a message_history item: a null or missing role or content is
    empty, never the word "None"; an item with neither is dropped."""
    if not isinstance(item, dict):
        return None
    role, content = item.get("role"), item.get("content")
    role = role if isinstance(role, str) else ""
    content = content if isinstance(content, str) else ""
    return (role, content) if role or content else None


class GatherSteps(StepBase):
    """Everything between call.answered and the end of an AI gather."""

    def start_ai_gather(
        self, names: list[str], parameters: dict[str, Any], greeting: str | None
    ) -> None:
        assert self.form is not None
        self.s.attempt += 1
        self.s.gather = Gather(kind=GatherKind.AI, attempt=self.s.attempt, fields=names)
        self.set_state(State.GATHERING)
        history = [
            {"role": m.role, "content": m.content}
            for m in self.s.transcript
            if m.role in ("assistant", "user") and m.content
        ]
        body = ai_gather_body(self.form, parameters, greeting, history)
        self.command(C.GATHER_USING_AI, body, kind=GatherKind.AI)
        self.s.gather.seq = self.s.command_seq
        self.change("gather")

    def current_ai_attempt(self, ev: E.Event) -> bool:
        """Whether an AI-gather webhook belongs to the gather that is running now."""
        g = self.s.gather
        if g is None or g.kind != GatherKind.AI:
            return False
        cs = ev.client_state
        if cs is None:
            return True  # a webhook without client_state still reaches its session
        if cs.session_id != self.s.id:
            return False
        return cs.attempt in (0, g.attempt)

    def attempt_of(self, ev: E.Event) -> int:
        cs = ev.client_state
        if cs is not None and cs.session_id == self.s.id and cs.attempt:
            return cs.attempt
        return self.s.gather.attempt if self.s.gather else self.s.attempt

    def record_history(self, ev: E.Event, history: list[dict[str, Any]]) -> None:
        """Keep the longest snapshot per attempt, without the prefix we sent ourselves."""
        if not history:
            return
        attempt = self.attempt_of(ev)
        earlier = [m for m in self.s.transcript if m.attempt < attempt]
        prefix = [(m.role, m.content) for m in earlier]
        lines = [line for line in map(_history_line, history) if line is not None]
        if prefix and lines[: len(prefix)] == prefix:
            lines = lines[len(prefix) :]
        current = [m for m in self.s.transcript if m.attempt == attempt]
        if len(lines) < len(current):
            return
        later = [m for m in self.s.transcript if m.attempt > attempt]
        # a line already held as it is keeps its Message (they are never changed in place)
        fresh = [
            current[i]
            if i < len(current) and current[i].role == r and current[i].content == c
            else Message(role=r, content=c, attempt=attempt)
            for i, (r, c) in enumerate(lines)
        ]
        self.s.transcript = earlier + fresh + later
        self.change("transcript")

    def on_partial(self, ev: E.AiGatherPartial) -> None:
        self.record_history(ev, ev.message_history)
        if self.s.terminal or not self.current_ai_attempt(ev):
            return
        asked = set(self.s.gather.fields) if self.s.gather else set()
        for key, value in ev.partial_results.items():
            if key in asked and self.s.partial.get(key) != value:
                self.s.partial[key] = value
                self.change("partial")

    def on_history(self, ev: E.AiGatherHistory) -> None:
        self.record_history(ev, ev.message_history)

    def on_ai_ended(self, ev: E.AiGatherEnded) -> None:
        self.record_history(ev, ev.message_history)
        if self.s.terminal or self.form is None or not self.current_ai_attempt(ev):
            if not self.s.terminal:
                self.note("stale_ai_gather_ended", attempt=self.attempt_of(ev))
            return
        gather = self.s.gather
        assert gather is not None
        values = {k: v for k, v in self.s.partial.items() if k in gather.fields}
        if isinstance(ev.result, dict):
            values.update({k: v for k, v in ev.result.items() if k in gather.fields})
        self.s.gather = None
        self.s.partial = {}
        for name in gather.fields:
            self.take_value(name, values, source="ai")
        self.change("fields", "gather")
        if self.s.state == State.CLOSING:
            self.finalize("completed" if not self.invalid_fields() else "abandoned")
            return
        self.after_ai_gather()

    def take_value(self, name: str, values: dict[str, Any], source: str) -> None:
        assert self.form is not None
        spec = self.form.fields[name]
        fs = self.s.fields.get(name) or FieldState(source=source)
        fs.attempts += 1
        if name in values:
            value = values[name]
            problems = (
                [E.TOO_LARGE_PROBLEM]
                if E.is_too_large(value)
                else self.form.validate_field(name, value)
            )
            fs.value, fs.has_value, fs.source = value, True, source
        elif fs.valid:
            # Asked again (a correction) but not given: the earlier valid value stands.
            self.s.fields[name] = fs
            return
        else:
            problems = ["is required"] if spec.required else []
        fs.valid = not problems and name in values
        fs.problems = list(problems)
        fs.errors.extend(problems)
        if not fs.valid and not problems:
            fs.source = source  # optional and not given: nothing is wrong
        self.s.fields[name] = fs

    def valid_data(self) -> dict[str, Any]:
        """The answers that passed validation so far."""
        return {name: fs.value for name, fs in self.s.fields.items() if fs.valid}

    def required_now(self) -> dict[str, str]:
        """The fields the form requires given the valid answers, with the rule of each."""
        assert self.form is not None
        return self.form.requirements(self.valid_data())

    def apply_rules(self) -> None:
        """The whole form's verdict on each answer: a root rule (a `then` that bounds a
        field, ...) can reject a value its field's own schema accepts."""
        assert self.form is not None
        for _ in range(len(self.form.fields) + 1):
            changed = False
            for name, problems in self.form.validate(self.valid_data()).items():
                fs = self.s.fields.get(name)
                real = [p for p in problems if p != "is required"]
                if not name or fs is None or not fs.valid or not real:
                    continue
                fs.valid, fs.problems = False, real
                fs.errors.extend(real)
                changed = True
            if not changed:
                return

    def invalid_fields(self) -> list[str]:
        """Fields the rules require now without a valid value, and fields given a wrong one."""
        assert self.form is not None
        self.apply_rules()
        required = self.required_now()
        out = []
        for name in self.form.fields:
            fs = self.s.fields.get(name)
            if fs is not None and fs.valid:
                continue
            if name in required or (fs is not None and fs.has_value):
                out.append(name)
        return out

    def after_ai_gather(self) -> None:
        assert self.form is not None
        invalid = self.invalid_fields()
        if not invalid:
            self.confirm_or_finish()
            return
        again = [
            n
            for n in invalid
            if (self.s.fields.get(n) or FieldState()).attempts
            < self.form.fields[n].attempts_allowed(self.form)
        ]
        if again:
            greeting = reask_greeting(self.form, again, self.s.fields, self.messages)
            params = self.form.sub_parameters(again, self.valid_data())
            self.start_ai_gather(again, params, greeting)
            return
        self.next_keypad_or_finish()
