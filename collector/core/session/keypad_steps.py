"""Steps on the keypad: the fallback for digits, the read-back and the choice of field."""

from __future__ import annotations

from typing import Any

from collector.core.session import commands as C
from collector.core.session import events as E
from collector.core.session.model import FieldState, Gather, GatherKind, Message, State
from collector.core.session.step import StepBase
from collector.core.session.wording import coerce_digits, confirm_readback, keypad_prompt, label


class KeypadSteps(StepBase):
    """gather_using_speak / gather_using_audio / gather, and what their digits mean."""

    def next_keypad_or_finish(self) -> None:
        assert self.form is not None
        for name in self.invalid_fields():
            spec = self.form.fields[name]
            fs = self.s.fields.get(name) or FieldState()
            if spec.options.dtmf is not None and fs.source != "keypad":
                self.start_keypad(name)
                return
        invalid = self.invalid_fields()
        required = self.required_now()
        if any(n in required for n in invalid):
            self.finalize("incomplete")
        else:
            self.confirm_or_finish()

    def start_keypad(self, name: str) -> None:
        assert self.form is not None
        spec = self.form.fields[name]
        dtmf = spec.options.dtmf
        assert dtmf is not None
        self.s.gather = Gather(kind=GatherKind.KEYPAD, attempt=self.s.attempt, fields=[name])
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
            self.command(C.GATHER_USING_AUDIO, body, kind=GatherKind.KEYPAD)
        else:
            body = {"payload": prompt, **self.voice(), **digits}
            if dtmf.invalid_prompt:
                body["invalid_payload"] = dtmf.invalid_prompt
            self.command(C.GATHER_USING_SPEAK, body, kind=GatherKind.KEYPAD)
        self.s.gather.seq = self.s.command_seq
        self.s.transcript.append(Message(role="assistant", content=prompt, attempt=self.s.attempt))
        self.change("gather", "transcript")

    def on_keypad_ended(self, ev: E.KeypadGatherEnded) -> None:
        g = self.s.gather
        if self.s.terminal or g is None or g.kind == GatherKind.AI:
            return
        cs = ev.client_state
        if cs is not None and cs.session_id == self.s.id and cs.kind not in ("", g.kind):
            return  # the end of an earlier gather of another kind
        if ev.status == "call_hangup":
            self.s.call_alive = False
            self.s.gather = None
            self.finalize("abandoned")
            return
        if g.kind == GatherKind.KEYPAD:
            self.keypad_value(g.fields[0], ev)
        elif g.kind == GatherKind.CONFIRM:
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

    def confirm_or_finish(self) -> None:
        assert self.form is not None
        confirm = self.form.options.confirm
        if confirm is None:
            self.finalize("completed")
            return
        self.s.gather = Gather(kind=GatherKind.CONFIRM, attempt=self.s.attempt)
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
        self.command(C.GATHER_USING_SPEAK, body, kind=GatherKind.CONFIRM)
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
        self.s.gather = Gather(kind=GatherKind.CHOOSE, attempt=self.s.attempt, fields=choices)
        self.command(C.SPEAK, {"payload": menu[:3000], **self.voice()}, kind=GatherKind.CHOOSE)
        self.command(
            C.GATHER,
            {
                "minimum_digits": 1,
                "maximum_digits": 1,
                "valid_digits": "".join(str(i + 1) for i in range(len(choices))),
                "timeout_millis": 15000,
            },
            kind=GatherKind.CHOOSE,
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
        if (
            ev.status == "valid"
            and digit.isascii()
            and digit.isdigit()
            and 1 <= int(digit) <= len(g.fields)
        ):
            self.correct([g.fields[int(digit) - 1]])
            return
        self.finalize("completed")  # no choice made: what was collected stands
