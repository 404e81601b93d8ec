"""decide(session, event) -> Decision: every rule of the call flow, with no I/O.

Theory of operation
-------------------
A session moves forward only:

    initiated -> answered -> gathering <-> keypad / confirming -> completed | incomplete
                                     \\-> closing (hung up mid-gather, waiting for the result)
    any non-terminal state -> abandoned (call gone) | failed (no form, command refused)

* `call.initiated` (incoming) -> answer. `call.answered` -> gather_using_ai for the form.
* AI-gather webhooks of the *current* attempt update the live view; those of an earlier
  attempt (by `client_state`) only go to the transcript.
* `call.ai_gather.ended` is validated here, against the form (Telnyx's `status` is a
  hint). Fields still wrong and under their `max_attempts` are asked again in one new
  gather; after that, fields with `x-collector.dtmf` go to the keypad; then the session
  finalizes (`completed` or `incomplete`).
* `call.hangup` while an AI gather runs moves to `closing` and waits
  `hangup_grace_seconds` for a late `ai_gather.ended` (Telnyx reorders webhooks), then
  finalizes `abandoned` with what is valid so far.
* Finalizing builds the submission once; a terminal session never changes its data again.
  Then the closing speech plays and the call is hung up on `call.speak.ended` or after a
  delay estimated from the speech's length.
* Deadlines live on the session (`deadline`, `deadline_kind`); the shell feeds them back
  as Timer events. Without a nearer one, the deadline is the session timeout, which
  asks the shell to look the call up (`retrieve_status`) and finalizes if it is gone.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collector.session import commands as C
from collector.session import events as E
from collector.session.client_state import encode
from collector.session.model import FieldState, Gather, Message, Session, State
from collector.session.submission import build_submission
from collector.session.wording import (
    coerce_digits,
    confirm_readback,
    keypad_prompt,
    label,
    reask_greeting,
    speech_seconds,
)

if TYPE_CHECKING:
    from collector.forms import Form

DEFAULT_VOICE = "Telnyx.KokoroTTS.af"
RECONCILE_RETRY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Policy:
    """The knobs of the flow that come from configuration."""

    hangup_grace_seconds: float = 5.0
    session_timeout_seconds: float = 1800.0
    default_voice: str = DEFAULT_VOICE
    closing_speech_max_seconds: float = 8.0


@dataclass(slots=True)
class Decision:
    """What decide() returns: the new session, commands to send, and the submission."""

    session: Session
    commands: list[C.Command] = field(default_factory=list)
    submission: dict[str, Any] | None = None
    changes: set[str] = field(default_factory=set)
    duplicate: bool = False
    notes: list[str] = field(default_factory=list)


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


def decide(
    session: Session,
    event: E.Event,
    form: Form | None,
    policy: Policy = Policy(),
    messages: dict[str, str] | None = None,
) -> Decision:
    """Apply one event to a session. Pure: the same inputs always give the same output."""
    if not event.id.startswith("~") and event.id in session.event_ids:
        return Decision(session=session, duplicate=True)
    step = _Step(session, event, form, policy, messages)
    step.run()
    return step.finish()


class _Step:
    """The working copy of one decide() call."""

    def __init__(
        self,
        session: Session,
        event: E.Event,
        form: Form | None,
        policy: Policy,
        messages: dict[str, str] | None,
    ) -> None:
        self.s = session.working_copy()
        self.event = event
        self.form = form
        self.policy = policy
        self.at = event.at
        self.messages = form.messages if form is not None else (messages or {})
        self.d = Decision(session=self.s)
        if not event.id.startswith("~"):
            self.s.event_ids.append(event.id)
        self.s.updated_at = max(self.s.updated_at, event.at)

    # -- plumbing -----------------------------------------------------------------

    def finish(self) -> Decision:
        self._schedule_timeout()
        return self.d

    def change(self, *what: str) -> None:
        self.d.changes.update(what)

    def note(self, kind: str, **detail: Any) -> None:
        self.s.notes.append({"kind": kind, "at": self.at, **detail})
        self.d.notes.append(kind)
        self.change("notes")

    def command(self, action: str, body: dict[str, Any] | None = None, kind: str = "") -> None:
        self.s.command_seq += 1
        payload = dict(body or {})
        if action != C.RETRIEVE_STATUS:
            attempt = self.s.gather.attempt if self.s.gather else self.s.attempt
            payload["client_state"] = encode(
                E.ClientState(session_id=self.s.id, kind=kind or action, attempt=attempt)
            )
        self.d.commands.append(
            C.Command(action=action, seq=self.s.command_seq, body=payload, decided_at=self.at)
        )

    def set_state(self, state: State) -> None:
        if self.s.state != state:
            self.s.state = state
            self.change("state")

    def set_deadline(self, kind: str | None, at: float | None) -> None:
        self.s.deadline_kind = kind
        self.s.deadline = at

    def _schedule_timeout(self) -> None:
        """Without a nearer deadline, the session times out after a silence."""
        s = self.s
        if s.terminal and (s.closing_phase == "done" or not s.call_alive):
            self.set_deadline(None, None)
            return
        if s.deadline_kind in ("grace", "speech", "assistant"):
            return
        if s.deadline_kind == "timeout" and isinstance(self.event, E.Timer):
            return  # just re-armed by the reconcile
        self.set_deadline("timeout", self.at + self.policy.session_timeout_seconds)

    def voice(self) -> dict[str, Any]:
        body: dict[str, Any] = {"voice": self.policy.default_voice}
        if self.form is not None:
            opts = self.form.options
            if opts.voice:
                body["voice"] = opts.voice
            if opts.speak_language:
                body["language"] = opts.speak_language
        return body

    # -- dispatch -----------------------------------------------------------------

    def run(self) -> None:
        ev = self.event
        handler = _HANDLERS.get(type(ev))
        if handler is not None:
            handler(self, ev)

    def on_initiated(self, ev: E.CallInitiated) -> None:
        if self.s.state != State.INITIATED or self.s.command_seq:
            return
        if ev.direction == "incoming":
            self.command(C.ANSWER, kind="answer")

    def on_answered(self, ev: E.CallAnswered) -> None:
        if self.s.state != State.INITIATED:
            return
        self.set_state(State.ANSWERED)
        if self.form is None:
            self.set_state(State.FAILED)
            self.s.outcome = "failed"
            self.s.ended_at = self.at
            self.closing_speech(self.messages.get("no_form", ""))
            return
        self.start_ai_gather(list(self.form.fields), self.form.parameters, greeting=None)

    # -- AI gather ------------------------------------------------------------------

    def start_ai_gather(
        self, names: list[str], parameters: dict[str, Any], greeting: str | None
    ) -> None:
        assert self.form is not None
        self.s.attempt += 1
        self.s.gather = Gather(kind="ai", attempt=self.s.attempt, fields=names)
        self.set_state(State.GATHERING)
        history = [
            {"role": m.role, "content": m.content}
            for m in self.s.transcript
            if m.role in ("assistant", "user") and m.content
        ]
        body = ai_gather_body(self.form, parameters, greeting, history)
        self.command(C.GATHER_USING_AI, body, kind="ai")
        self.s.gather.seq = self.s.command_seq
        self.change("gather")

    def current_ai_attempt(self, ev: E.Event) -> bool:
        """Whether an AI-gather webhook belongs to the gather that is running now."""
        g = self.s.gather
        if g is None or g.kind != "ai":
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
        lines = [
            (str(m.get("role", "")), str(m.get("content", "")))
            for m in history
            if isinstance(m, dict)
        ]
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
            problems = self.form.validate_field(name, value)
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

    def invalid_fields(self) -> list[str]:
        """Required fields without a valid value, and optional fields given a wrong one."""
        assert self.form is not None
        out = []
        for name, spec in self.form.fields.items():
            fs = self.s.fields.get(name)
            if fs is not None and fs.valid:
                continue
            if spec.required or (fs is not None and fs.has_value):
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
            self.start_ai_gather(again, self.form.sub_parameters(again), greeting)
            return
        self.next_keypad_or_finish()

    # -- keypad fallback ------------------------------------------------------------

    def next_keypad_or_finish(self) -> None:
        assert self.form is not None
        for name in self.invalid_fields():
            spec = self.form.fields[name]
            fs = self.s.fields.get(name) or FieldState()
            if spec.options.dtmf is not None and fs.source != "keypad":
                self.start_keypad(name)
                return
        invalid = self.invalid_fields()
        required_missing = [n for n in invalid if self.form.fields[n].required]
        if required_missing:
            self.finalize("incomplete")
        else:
            self.confirm_or_finish()

    def start_keypad(self, name: str) -> None:
        assert self.form is not None
        spec = self.form.fields[name]
        dtmf = spec.options.dtmf
        assert dtmf is not None
        self.s.gather = Gather(kind="keypad", attempt=self.s.attempt, fields=[name])
        self.set_state(State.KEYPAD)
        digits: dict[str, Any] = {
            k: v
            for k, v in {
                "minimum_digits": dtmf.minimum_digits,
                "maximum_digits": dtmf.maximum_digits,
                "valid_digits": dtmf.valid_digits,
                "terminating_digit": dtmf.terminating_digit,
                "timeout_millis": dtmf.timeout_millis,
                "inter_digit_timeout_millis": dtmf.inter_digit_timeout_millis,
                "maximum_tries": dtmf.maximum_tries,
            }.items()
            if v is not None
        }
        prompt = keypad_prompt(self.form, name, self.messages)
        if dtmf.audio_url:
            body = {"audio_url": dtmf.audio_url, **digits}
            if dtmf.invalid_audio_url:
                body["invalid_audio_url"] = dtmf.invalid_audio_url
            self.command(C.GATHER_USING_AUDIO, body, kind="keypad")
        else:
            body = {"payload": prompt, **self.voice(), **digits}
            if dtmf.invalid_prompt:
                body["invalid_payload"] = dtmf.invalid_prompt
            self.command(C.GATHER_USING_SPEAK, body, kind="keypad")
        self.s.gather.seq = self.s.command_seq
        self.s.transcript.append(Message(role="assistant", content=prompt, attempt=self.s.attempt))
        self.change("gather", "transcript")

    def on_keypad_ended(self, ev: E.KeypadGatherEnded) -> None:
        g = self.s.gather
        if self.s.terminal or g is None or g.kind not in ("keypad", "confirm", "choose"):
            return
        cs = ev.client_state
        if cs is not None and cs.session_id == self.s.id and cs.kind not in ("", g.kind):
            return  # the end of an earlier gather of another kind
        if ev.status == "call_hangup":
            self.s.call_alive = False
            self.s.gather = None
            self.finalize("abandoned")
            return
        if g.kind == "keypad":
            self.keypad_value(g.fields[0], ev)
        elif g.kind == "confirm":
            self.confirm_answer(ev)
        else:
            self.choose_answer(ev)

    def keypad_value(self, name: str, ev: E.KeypadGatherEnded) -> None:
        assert self.form is not None
        self.s.gather = None
        fs = self.s.fields.get(name) or FieldState()
        fs.source = "keypad"
        self.s.fields[name] = fs
        if ev.digits:
            self.s.transcript.append(
                Message(role="user", content=f"[keypad] {ev.digits}", attempt=self.s.attempt)
            )
            self.change("transcript")
        if ev.status == "valid" and ev.digits:
            value = coerce_digits(ev.digits, self.form.fields[name].schema)
            self.take_value(name, {name: value}, source="keypad")
        else:
            problem = (
                "no digits were entered" if ev.status == "timeout" else "keypad entry was invalid"
            )
            fs.attempts += 1
            fs.problems = [problem]
            fs.errors.append(problem)
        self.change("fields", "gather")
        self.next_keypad_or_finish()

    # -- confirmation ---------------------------------------------------------------

    def confirm_or_finish(self) -> None:
        assert self.form is not None
        confirm = self.form.options.confirm
        if confirm is None:
            self.finalize("completed")
            return
        self.s.gather = Gather(kind="confirm", attempt=self.s.attempt)
        self.set_state(State.CONFIRMING)
        payload = confirm_readback(self.form, self.s.fields, self.messages)
        body = {
            "payload": payload,
            **self.voice(),
            "minimum_digits": 1,
            "maximum_digits": 1,
            "valid_digits": "12",
            "maximum_tries": 3,
        }
        if self.messages.get("confirm_invalid"):
            body["invalid_payload"] = self.messages["confirm_invalid"]
        self.command(C.GATHER_USING_SPEAK, body, kind="confirm")
        self.s.gather.seq = self.s.command_seq
        self.s.transcript.append(Message(role="assistant", content=payload, attempt=self.s.attempt))
        self.change("gather", "transcript")

    def confirm_answer(self, ev: E.KeypadGatherEnded) -> None:
        assert self.form is not None
        self.s.gather = None
        self.keypad_line(ev.digits)
        confirm = self.form.options.confirm
        assert confirm is not None
        wants_change = ev.status == "valid" and ev.digits.startswith("2")
        if wants_change and self.s.corrections < confirm.max_corrections:
            self.s.corrections += 1
            names = [n for n in self.form.fields if n in self.s.fields]
            if confirm.choose_field and len(names) > 1:
                self.ask_which_field(names)
            else:
                self.correct(names)
            return
        if ev.status == "valid" and ev.digits.startswith("1"):
            for fs in self.s.fields.values():
                if fs.valid:
                    fs.source = "confirmed"
            self.change("fields")
        self.finalize("completed")

    def keypad_line(self, digits: str) -> None:
        if digits:
            self.s.transcript.append(
                Message(role="user", content=f"[keypad] {digits}", attempt=self.s.attempt)
            )
            self.change("transcript")

    def correct(self, names: list[str]) -> None:
        """Ask again for `names` by voice; a correction is one more chance for each."""
        assert self.form is not None
        for name in names:
            fs = self.s.fields.get(name)
            if fs is not None:
                allowed = self.form.fields[name].attempts_allowed(self.form)
                fs.attempts = min(fs.attempts, allowed - 1)
        greeting = self.messages.get("correct_prompt") or None
        self.start_ai_gather(names, self.form.sub_parameters(names), greeting)

    def ask_which_field(self, names: list[str]) -> None:
        """The menu of fields is spoken, then a plain `gather` takes the caller's choice."""
        assert self.form is not None
        choices = names[:9]
        option = self.messages.get("choose_option", "To change the {field}, press {digit}.")
        menu = " ".join(
            option.replace("{field}", label(self.form, name)).replace("{digit}", str(i + 1))
            for i, name in enumerate(choices)
        )
        self.s.gather = Gather(kind="choose", attempt=self.s.attempt, fields=choices)
        self.command(C.SPEAK, {"payload": menu[:3000], **self.voice()}, kind="choose")
        self.command(
            C.GATHER,
            {
                "minimum_digits": 1,
                "maximum_digits": 1,
                "valid_digits": "".join(str(i + 1) for i in range(len(choices))),
                "timeout_millis": 15000,
            },
            kind="choose",
        )
        self.s.gather.seq = self.s.command_seq
        self.s.transcript.append(Message(role="assistant", content=menu, attempt=self.s.attempt))
        self.change("gather", "transcript")

    def choose_answer(self, ev: E.KeypadGatherEnded) -> None:
        g = self.s.gather
        assert g is not None
        self.s.gather = None
        self.keypad_line(ev.digits)
        digit = ev.digits[:1]
        if ev.status == "valid" and digit.isdigit() and 1 <= int(digit) <= len(g.fields):
            self.correct([g.fields[int(digit) - 1]])
            return
        self.finalize("completed")  # no choice made: what was collected stands

    # -- the end ----------------------------------------------------------------------

    def finalize(self, status: str, state: State | None = None) -> None:
        if self.s.terminal:
            return
        assert self.form is not None
        g = self.s.gather
        if g is not None and g.kind == "ai" and self.s.partial:
            # the gather never ended: keep what the partial results offered
            for name in g.fields:
                if name in self.s.partial:
                    self.take_value(name, self.s.partial, source="ai")
            self.s.partial = {}
        self.s.gather = None
        self.s.outcome = status
        self.s.ended_at = self.at
        self.set_state(state or State(status))
        if self.s.deadline_kind == "grace":
            self.set_deadline(None, None)
        submission = build_submission(self.s, self.form, status, self.at)
        self.s.submission_id = submission["submission_id"]
        self.s.errors = list(submission["errors"])
        self.d.submission = submission
        self.change("finalized")
        if self.s.call_alive:
            if status == "completed" and self.form.options.after is not None:
                self.start_assistant()
                return
            key = "goodbye" if status == "completed" else "incomplete_goodbye"
            self.closing_speech(self.messages.get(key) or self.messages.get("goodbye", ""))

    def start_assistant(self) -> None:
        """Hand the caller to a stored AI assistant, primed with what was collected."""
        assert self.form is not None and self.form.options.after is not None
        after = self.form.options.after
        body = copy.deepcopy(after.body)
        collected = {
            name: fs.value
            for name, fs in self.s.fields.items()
            if fs.valid and not self.form.fields[name].options.sensitive
        }
        assistant = body.setdefault("assistant", {})
        variables = dict(assistant.get("dynamic_variables") or {})
        for name, value in collected.items():
            ok = isinstance(value, str | int | float | bool)
            variables[name] = value if ok else json.dumps(value, ensure_ascii=False)
        assistant["dynamic_variables"] = variables
        self.command(C.AI_ASSISTANT_START, body, kind="assistant")
        summary = "; ".join(f"{label(self.form, n)}: {v}" for n, v in collected.items())
        note = f"The caller has just completed the form {self.form.title!r}. Collected: {summary}."
        self.command(
            C.AI_ASSISTANT_ADD_MESSAGES,
            {"messages": [{"role": "system", "content": note[:3000]}]},
            kind="assistant",
        )
        self.s.closing_phase = "assistant"
        if after.max_seconds:
            self.set_deadline("assistant", self.at + after.max_seconds)
        self.change("assistant")

    def stop_assistant(self, message_key: str) -> None:
        self.command(C.AI_ASSISTANT_STOP, kind="assistant_stop")
        self.closing_speech(self.messages.get(message_key) or self.messages.get("goodbye", ""))

    def closing_speech(self, text: str) -> None:
        if not self.s.call_alive:
            return
        if not text:
            self.hangup()
            return
        self.command(C.SPEAK, {"payload": text, **self.voice()}, kind="goodbye")
        self.s.closing_phase = "goodbye"
        delay = min(self.policy.closing_speech_max_seconds, speech_seconds(text))
        self.set_deadline("speech", self.at + delay)

    def hangup(self) -> None:
        if self.s.closing_phase in ("hangup", "done") or not self.s.call_alive:
            return
        self.command(C.HANGUP, kind="hangup")
        self.s.closing_phase = "hangup"
        self.set_deadline(None, None)

    def on_speak_ended(self, ev: E.SpeakEnded) -> None:
        if self.s.closing_phase == "goodbye":
            self.hangup()

    def on_hangup(self, ev: E.CallHangup) -> None:
        was_alive = self.s.call_alive
        self.s.call_alive = False
        self.s.hangup_cause = ev.cause
        self.change("call")
        if self.s.terminal:
            self.s.closing_phase = "done"
            return
        if not was_alive and self.s.state == State.CLOSING:
            return
        if self.form is None:
            self.set_state(State.FAILED)
            self.s.closing_phase = "done"
            return
        g = self.s.gather
        if g is not None and g.kind == "ai" and self.s.state == State.GATHERING:
            self.set_state(State.CLOSING)
            self.set_deadline("grace", self.at + self.policy.hangup_grace_seconds)
            return
        self.finalize("abandoned")
        self.s.closing_phase = "done"

    def on_timer(self, ev: E.Timer) -> None:
        s = self.s
        if ev.kind != s.deadline_kind or s.deadline is None or abs(ev.due - s.deadline) > 1e-6:
            return  # a timer that was replaced or already handled
        self.set_deadline(None, None)
        if ev.kind == "grace":
            if s.state == State.CLOSING:
                self.finalize("abandoned")
                s.closing_phase = "done"
        elif ev.kind == "speech":
            if s.closing_phase == "goodbye":
                self.hangup()
        elif ev.kind == "assistant":
            if s.closing_phase == "assistant" and s.call_alive:
                self.stop_assistant("goodbye")
        elif ev.kind == "timeout":
            self.command(C.RETRIEVE_STATUS)
            self.set_deadline("timeout", self.at + RECONCILE_RETRY_SECONDS)

    def on_call_status(self, ev: E.CallStatus) -> None:
        if ev.alive:
            return
        self.s.call_alive = False
        self.change("call")
        if self.s.terminal:
            self.s.closing_phase = "done"
            self.set_deadline(None, None)
            return
        if self.form is None:
            self.set_state(State.FAILED)
            return
        self.finalize("abandoned")
        self.s.closing_phase = "done"

    def on_command_failed(self, ev: E.CommandFailed) -> None:
        self.note("command_failed", action=ev.action, code=ev.code, detail=ev.detail[:300])
        if ev.call_gone:
            self.on_call_status(
                E.CallStatus(id="~gone", call_control_id="", at=self.at, alive=False)
            )
            return
        if self.s.terminal:
            if ev.action == C.SPEAK and self.s.closing_phase == "goodbye":
                self.hangup()
            return
        g = self.s.gather
        if (
            ev.action == C.GATHER_USING_AI
            and g is not None
            and g.kind == "ai"
            and g.seq == ev.seq
            and g.tries == 0
            and self.form is not None
        ):
            # Telnyx may refuse a gather while another still runs: stop it, ask once more.
            self.command(C.GATHER_STOP, kind="stop")
            g.tries += 1
            names = list(g.fields)
            params = (
                self.form.parameters
                if names == list(self.form.fields)
                else self.form.sub_parameters(names)
            )
            self.start_ai_gather(names, params, greeting=None)
            assert self.s.gather is not None
            self.s.gather.tries = 1
            return
        if self.form is None:
            self.set_state(State.FAILED)
            return
        status = "incomplete" if self.s.state != State.INITIATED else "abandoned"
        self.finalize(status, state=State.FAILED)

    def on_cancel(self, ev: E.Cancel) -> None:
        if self.s.terminal:
            if self.s.closing_phase == "assistant" and self.s.call_alive:
                self.note("cancelled", reason=ev.reason)
                self.stop_assistant("cancelled")
            return
        self.note("cancelled", reason=ev.reason)
        g = self.s.gather
        if g is not None and self.s.call_alive:
            self.command(C.GATHER_STOP, kind="stop")
        self.s.gather = None
        if self.form is None:
            self.set_state(State.FAILED)
            self.closing_speech(self.messages.get("cancelled", ""))
            return
        alive = self.s.call_alive
        self.s.call_alive = False  # finalize without its own goodbye: ours follows
        self.finalize("abandoned")
        self.s.call_alive = alive
        if alive:
            self.closing_speech(self.messages.get("cancelled", ""))

    def on_conversation(self, ev: E.ConversationEvent) -> None:
        self.s.conversation.append({"type": ev.event_type, "at": self.at, **ev.summary})
        self.change("conversation")


_HANDLERS: dict[type, Any] = {
    E.CallInitiated: _Step.on_initiated,
    E.CallAnswered: _Step.on_answered,
    E.AiGatherPartial: _Step.on_partial,
    E.AiGatherHistory: _Step.on_history,
    E.AiGatherEnded: _Step.on_ai_ended,
    E.KeypadGatherEnded: _Step.on_keypad_ended,
    E.SpeakEnded: _Step.on_speak_ended,
    E.CallHangup: _Step.on_hangup,
    E.Timer: _Step.on_timer,
    E.CallStatus: _Step.on_call_status,
    E.CommandFailed: _Step.on_command_failed,
    E.Cancel: _Step.on_cancel,
    E.ConversationEvent: _Step.on_conversation,
}
