"""Steps that end things: finalize, goodbye and hangup, timers, failures, cancel, hand-off."""

from __future__ import annotations

import copy
import json

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.model import ClosingPhase, DeadlineKind, GatherKind, State
from collector.core.session.step import RECONCILE_RETRY_SECONDS, StepBase
from collector.core.session.submission import build_submission
from collector.core.session.wording import label, speech_seconds


class ClosingSteps(StepBase):
    """The one finalize, the closing speech and hangup, and what can end a call early."""

    def finalize(self, status: str, state: State | None = None) -> None:
        if self.s.terminal:
            return
        assert self.form is not None
        g = self.s.gather
        if g is not None and g.kind == GatherKind.AI and self.s.partial:
            # the gather never ended: keep what the partial results offered
            for name in g.fields:
                if name in self.s.partial:
                    self.take_value(name, self.s.partial, source="ai")
            self.s.partial = {}
        self.s.gather = None
        if status == "completed" and self.invalid_fields():
            status = "incomplete"  # the whole form is the verdict, root rules included
        if status == "completed" and self.form.validate(self.valid_data()):
            status = "incomplete"
        self.s.outcome = status
        self.s.ended_at = self.at
        self.set_state(state or State(status))
        if self.s.deadline_kind == DeadlineKind.GRACE:
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
        self.s.closing_phase = ClosingPhase.ASSISTANT
        if after.max_seconds:
            self.set_deadline(DeadlineKind.ASSISTANT, self.at + after.max_seconds)
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
        self.s.closing_phase = ClosingPhase.GOODBYE
        delay = min(self.policy.closing_speech_max_seconds, speech_seconds(text))
        self.set_deadline(DeadlineKind.SPEECH, self.at + delay)

    def hangup(self) -> None:
        if (
            self.s.closing_phase in (ClosingPhase.HANGUP, ClosingPhase.DONE)
            or not self.s.call_alive
        ):
            return
        self.command(C.HANGUP, kind="hangup")
        self.s.closing_phase = ClosingPhase.HANGUP
        self.set_deadline(None, None)

    def on_speak_ended(self, ev: E.SpeakEnded) -> None:
        if self.s.closing_phase == ClosingPhase.GOODBYE:
            self.hangup()

    def on_hangup(self, ev: E.CallHangup) -> None:
        was_alive = self.s.call_alive
        self.s.call_alive = False
        self.s.hangup_cause = ev.cause
        self.change("call")
        if self.s.terminal:
            self.s.closing_phase = ClosingPhase.DONE
            return
        if not was_alive and self.s.state == State.CLOSING:
            return
        if self.form is None:
            self.set_state(State.FAILED)
            self.s.closing_phase = ClosingPhase.DONE
            return
        g = self.s.gather
        if g is not None and g.kind == GatherKind.AI and self.s.state == State.GATHERING:
            self.set_state(State.CLOSING)
            self.set_deadline(DeadlineKind.GRACE, self.at + self.policy.hangup_grace_seconds)
            return
        self.finalize("abandoned")
        self.s.closing_phase = ClosingPhase.DONE

    def on_timer(self, ev: E.Timer) -> None:
        s = self.s
        if ev.kind != s.deadline_kind or s.deadline is None or abs(ev.due - s.deadline) > 1e-6:
            return  # a timer that was replaced or already handled
        self.set_deadline(None, None)
        if ev.kind == DeadlineKind.GRACE:
            if s.state == State.CLOSING:
                self.finalize("abandoned")
                s.closing_phase = ClosingPhase.DONE
        elif ev.kind == DeadlineKind.SPEECH:
            if s.closing_phase == ClosingPhase.GOODBYE:
                self.hangup()
        elif ev.kind == DeadlineKind.ASSISTANT:
            if s.closing_phase == ClosingPhase.ASSISTANT and s.call_alive:
                self.stop_assistant("goodbye")
        elif ev.kind == DeadlineKind.TIMEOUT:
            self.command(C.RETRIEVE_STATUS)
            self.set_deadline(DeadlineKind.TIMEOUT, self.at + RECONCILE_RETRY_SECONDS)

    def on_call_status(self, ev: E.CallStatus) -> None:
        if not ev.alive:
            self.call_gone()

    def call_gone(self) -> None:
        self.s.call_alive = False
        self.change("call")
        if self.s.terminal:
            self.s.closing_phase = ClosingPhase.DONE
            self.set_deadline(None, None)
            return
        if self.form is None:
            self.set_state(State.FAILED)
            return
        self.finalize("abandoned")
        self.s.closing_phase = ClosingPhase.DONE

    def on_command_failed(self, ev: E.CommandFailed) -> None:
        self.note("command_failed", action=ev.action, code=ev.code, detail=ev.detail[:300])
        if ev.call_gone:
            self.call_gone()
            return
        if self.s.terminal:
            if ev.action == C.SPEAK and self.s.closing_phase == ClosingPhase.GOODBYE:
                self.hangup()
            return
        g = self.s.gather
        if (
            ev.action == C.GATHER_USING_AI
            and g is not None
            and g.kind == GatherKind.AI
            and g.seq == ev.seq
            and g.refusals == 0
            and self.form is not None
        ):
            # Telnyx may refuse a gather while another still runs: stop it, ask once more.
            self.command(C.GATHER_STOP, kind="stop")
            g.refusals += 1
            names = list(g.fields)
            params = (
                self.form.parameters
                if names == self.form.first_fields
                else self.form.sub_parameters(names)
            )
            self.start_ai_gather(names, params, greeting=None)
            assert self.s.gather is not None
            self.s.gather.refusals = 1
            return
        if self.form is None:
            self.set_state(State.FAILED)
            return
        status = "incomplete" if self.s.state != State.INITIATED else "abandoned"
        self.finalize(status, state=State.FAILED)

    def on_cancel(self, ev: E.Cancel) -> None:
        if self.s.terminal:
            if self.s.closing_phase == ClosingPhase.ASSISTANT and self.s.call_alive:
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
