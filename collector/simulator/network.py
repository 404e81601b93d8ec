"""The simulated phone network: what Telnyx does after each command.

`Network` owns the simulated calls' behaviour. A command's effect runs after the HTTP
response, as an asyncio task per call, with `pace` seconds between webhooks: media effects
(answer, speak, keypad and AI gathers, assistant conversations) queue behind each other,
while hangup, gather_stop and ai_assistant_stop act at once and end what is playing. Each
event goes to the call's ordered webhook queue (`webhooks.WebhookSender`). The voice AI's
conversations (AI gathers, assistants) are in `voice_ai`.

Where Telnyx leaves the behaviour open, the simulator picks one and sticks to it:

* a hangup (either side) sends `call.hangup` first, then the end of whatever it
  interrupted: `call.speak.ended` / `call.gather.ended` with status `call_hangup`, or a late
  `call.ai_gather.ended` (status `invalid`, the result so far) and
  `call.conversation.ended`;
* `gather_stop` ends a keypad gather with status `cancelled` (the digits so far) and an AI
  gather with `call.ai_gather.ended` status `invalid` plus `call.conversation.ended`;
* a keypad gather with nothing scripted ends at once with status `timeout`;
* a dialled callee (the script's `callee`) answers one pace after `call.initiated`, and
  with answering machine detection asked for, `call.machine.detection.ended` (premium
  modes: its premium twin) follows the answer, then for a voicemail box the greeting's
  end two paces later; an unanswered call rings a few paces, not its whole ring timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from collector.simulator.caller import ScriptedCaller
from collector.simulator.calls import (
    AiGatherState,
    KeypadState,
    SimCall,
    conversation_ended_fields,
    hangup_fields,
    initiated_fields,
    iso_now,
)
from collector.simulator.effect import Effect, int_or, media, str_or
from collector.simulator.script import CallScript
from collector.simulator.voice_ai import ai_gather, assistant_conversation, text_messages
from collector.simulator.webhooks import WebhookSender

__all__ = ["Effect", "Network"]

_KEYPAD_ACTIONS = frozenset({"gather", "gather_using_speak", "gather_using_audio"})
# callees who never answer: the hangup's cause and source, and how many paces it rings
# first (not the whole ring timeout: the sandbox has no time to spare)
_UNANSWERED = {
    "no_answer": ("timeout", "unknown", 6),
    "busy": ("user_busy", "callee", 1),
    "rejected": ("call_rejected", "callee", 2),
}


class Network:
    """The calls' behaviour: ringing, answering, speaking, gathering, hanging up."""

    def __init__(
        self,
        calls: dict[str, SimCall],
        sender: WebhookSender,
        webhook_url: str | Callable[[], str],
        pace: float,
    ) -> None:
        self.calls = calls
        self.sender = sender
        self.webhook_url = webhook_url
        self.pace = pace

    # -- webhooks ---------------------------------------------------------------------------

    def url_for(self, call: SimCall) -> Callable[[], str]:
        def url() -> str:
            if call.webhook_url:
                return call.webhook_url
            return self.webhook_url() if callable(self.webhook_url) else self.webhook_url

        return url

    def emit(
        self,
        call: SimCall,
        event_type: str,
        fields: Mapping[str, Any] | None = None,
        *,
        client_state: str | None,
        parties: bool = True,
    ) -> None:
        payload = call.payload(client_state, with_parties=parties)
        payload.update(fields or {})
        data: dict[str, Any] = {
            "record_type": "event",
            "event_type": event_type,
            "id": str(uuid.uuid4()),
            "occurred_at": iso_now(),
            "payload": dict(sorted(payload.items())),
        }
        if event_type.startswith("call.conversation."):
            data["created_at"] = iso_now()
        self.sender.send(call.call_control_id, data, self.url_for(call))

    def sent(self, call_control_id: str, envelope: dict[str, Any]) -> None:
        call = self.calls.get(call_control_id)
        if call is not None:
            call.events_sent.append(envelope)

    # -- activities: what happens after a command, paced ------------------------------------

    def spawn(self, call: SimCall, effect: Effect, *, queued: bool = True) -> None:
        """Run `effect` for `call`: after the call's earlier activities when `queued`.

        Queued effects are the call's media (answer, speech, gathers, conversations), one
        at a time; the others (hangup, gather_stop, ai_assistant_stop) act at once.
        """
        previous = call.tail if queued else None

        async def run() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            if not queued:
                await effect()
                return
            if not call.alive:
                return
            me = asyncio.current_task()
            call.current, call.current_kind = me, getattr(effect, "kind", None)
            try:
                await effect()
            finally:
                if call.current is me:
                    call.current, call.current_kind = None, None

        task = asyncio.get_running_loop().create_task(run())
        call.tasks.add(task)
        task.add_done_callback(call.tasks.discard)
        if queued:
            call.tail = task

    async def pause(self, call: SimCall) -> None:
        await asyncio.sleep(self.pace)
        if not call.alive:
            raise asyncio.CancelledError  # the call ended while we waited

    def hangup_now(
        self, call: SimCall, source: str, cause: str, client_state: str | None = None
    ) -> None:
        """End the call at once: `call.hangup`, then the ends of what it interrupted."""
        if call.end_time is not None:
            return
        call.alive = False
        call.end_time = iso_now()
        call.ended_monotonic = time.monotonic()
        me = asyncio.current_task()
        for task in list(call.tasks):
            if task is not me:
                task.cancel()
        state = client_state if client_state is not None else call.client_state
        self.emit(call, "call.hangup", hangup_fields(call, cause, source), client_state=state)
        if call.speaking:
            call.speaking = False
            fields = {"status": "call_hangup"}
            self.emit(
                call, "call.speak.ended", fields, client_state=call.speak_state, parties=False
            )
        if call.keypad is not None:
            kp, call.keypad = call.keypad, None
            fields = {"digits": kp.digits, "status": "call_hangup"}
            self.emit(call, "call.gather.ended", fields, client_state=kp.client_state)
        if call.ai is not None:
            self.end_ai(call, "invalid")
        if call.assistant is not None:
            conv, call.assistant = call.assistant, None
            fields = conversation_ended_fields(conv)
            self.emit(call, "call.conversation.ended", fields, client_state=conv.client_state)
        self.sender.finish(call.call_control_id)

    def end_ai(self, call: SimCall, status: str) -> None:
        state, call.ai = call.ai, None
        if state is None:
            return
        history = [dict(m) for m in state.history]
        fields = {"message_history": history, "result": dict(state.result), "status": status}
        self.emit(call, "call.ai_gather.ended", fields, client_state=state.client_state)
        ended = conversation_ended_fields(state)
        self.emit(call, "call.conversation.ended", ended, client_state=state.client_state)

    # -- starting calls ---------------------------------------------------------------------

    def ring_inbound(self, to: str, from_: str, script: CallScript, connection_id: str) -> SimCall:
        """A new inbound call: `call.initiated` (parked), then whatever the server does."""
        call = SimCall.new(
            from_=from_,
            to=to,
            direction="incoming",
            caller=ScriptedCaller(script),
            connection_id=connection_id,
        )
        self.calls[call.call_control_id] = call

        @media("ring")
        async def ring() -> None:
            self.emit(call, "call.initiated", initiated_fields(call), client_state=None)
            if script.hangup == "before_answer":
                call.alive = False  # the caller is gone before anyone can answer
                await asyncio.sleep(self.pace)
                self.hangup_now(call, "caller", "originator_cancel")

        self.spawn(call, ring)
        return call

    def ring_outbound(
        self, call: SimCall, script: CallScript, detection: str | None = None
    ) -> Effect:
        """What follows a dial: `call.initiated` (bridging), then the callee (`script.callee`):
        answered (with `detection`, the dial's answering_machine_detection, the machine
        detection's webhooks), or a hangup that says why nobody answered."""
        cs = call.client_state
        callee = script.callee
        premium = (detection or "").startswith("premium")
        detects = detection not in (None, "", "disabled")

        @media("ring")
        async def ring() -> None:
            await self.pause(call)
            self.emit(call, "call.initiated", initiated_fields(call), client_state=cs)
            await self.pause(call)
            if script.hangup == "before_answer":
                self.hangup_now(call, "callee", "no_answer", cs)
                return
            if callee in _UNANSWERED:
                cause, source, rings = _UNANSWERED[callee]
                for _ in range(rings):
                    await self.pause(call)
                self.hangup_now(call, source, cause, cs)
                return
            call.answered = True
            fields = {"start_time": call.start_time, "state": "answered"}
            self.emit(call, "call.answered", fields, client_state=cs)
            if not detects:
                return
            await self.pause(call)
            machine = callee == "voicemail"
            result = "machine" if machine else ("human_residence" if premium else "human")
            kind = "premium." if premium else ""
            self.emit(
                call, f"call.machine.{kind}detection.ended", {"result": result}, client_state=cs
            )
            if machine:  # the box's greeting plays, then its beep
                await self.pause(call)
                await self.pause(call)
                self.emit(
                    call,
                    f"call.machine.{kind}greeting.ended",
                    {"result": "beep_detected"},
                    client_state=cs,
                )

        return ring

    async def start(self, call: SimCall, effect: Effect, queued: bool = True) -> None:
        """Spawn `effect` (a Starlette background task runs this after the response)."""
        self.spawn(call, effect, queued=queued)

    # -- commands ---------------------------------------------------------------------------

    def act(
        self, call: SimCall, action: str, body: dict[str, Any], cs: str | None, data: dict[str, Any]
    ) -> tuple[Effect | None, bool]:
        """Apply an accepted command to the call's state now; return what follows it.

        `data` is the response's `data` (a `conversation_id` is added where Telnyx adds one);
        the bool says whether the effect queues behind the call's media.
        """
        if action == "answer":
            if call.answered or call.direction == "outgoing":
                return None, True  # nothing to answer
            call.answered = True
            if str_or(body.get("webhook_url"), ""):
                call.webhook_url = body["webhook_url"]
            return self._answer(call, cs), True
        if action == "hangup":
            call.alive = False  # later commands get 90018 even before call.hangup goes out
            source = "callee" if call.direction == "incoming" else "caller"

            async def hangup() -> None:
                self.hangup_now(call, source, "normal_clearing", cs)

            return hangup, False
        if action == "speak":
            return self._speak(call, cs), True
        if action in _KEYPAD_ACTIONS:
            prompt = body.get("payload")
            digits = call.caller.keypad_entry(prompt if isinstance(prompt, str) else None, cs)
            return self._keypad(call, action, body, cs, digits), True
        if action == "gather_using_ai":
            data["conversation_id"] = conversation_id = str(uuid.uuid4())
            return ai_gather(self, call, body, cs, conversation_id), True
        if action == "gather_stop":
            return self._stop_gather(call, cs), False
        if action == "ai_assistant_start":
            data["conversation_id"] = conversation_id = str(uuid.uuid4())
            call.assistant = AiGatherState(conversation_id, cs, history=[])
            return assistant_conversation(self, call, body, cs, call.assistant), True
        if action == "ai_assistant_stop":

            async def stop() -> None:
                call.assistant = None  # a queued conversation will not start
                if call.current_kind == "assistant" and call.current is not None:
                    call.current.cancel()

            return stop, False
        if action == "ai_assistant_add_messages" and call.assistant is not None:
            for m in text_messages(body.get("messages")):
                call.assistant.history.append(m)
                call.assistant.stamps.append(iso_now("milliseconds"))
        return None, True  # client_state_update, ai_assistant_add_messages: no webhooks

    def _answer(self, call: SimCall, cs: str | None) -> Effect:
        @media("answer")
        async def answer() -> None:
            await self.pause(call)
            fields = {"start_time": call.start_time, "state": "answered"}
            self.emit(call, "call.answered", fields, client_state=cs)

        return answer

    def _speak(self, call: SimCall, cs: str | None) -> Effect:
        @media("speak")
        async def speak() -> None:
            await self.pause(call)
            self.emit(call, "call.speak.started", client_state=cs, parties=False)
            call.speaking, call.speak_state = True, cs
            await self.pause(call)
            call.speaking = False
            self.emit(
                call, "call.speak.ended", {"status": "completed"}, client_state=cs, parties=False
            )

        return speak

    def _keypad(
        self, call: SimCall, action: str, body: dict[str, Any], cs: str | None, entry: str | None
    ) -> Effect:
        terminator = str_or(body.get("terminating_digit"), "#")
        valid = str_or(body.get("valid_digits"), "0123456789#*")
        low = int_or(body.get("minimum_digits"), 1)
        high = int_or(body.get("maximum_digits"), 128)

        @media("keypad")
        async def gather() -> None:
            call.keypad = state = KeypadState(cs)
            try:
                if action == "gather_using_audio":
                    media = {
                        "media_url": body.get("audio_url"),
                        "media_name": body.get("media_name"),
                    }
                    await self.pause(call)
                    self.emit(call, "call.playback.started", media, client_state=cs)
                    await self.pause(call)
                    ended = {**media, "overlay": False, "status": "completed"}
                    self.emit(call, "call.playback.ended", ended, client_state=cs)
                await self.pause(call)  # the prompt plays
                status = "timeout"
                for key in entry or "":
                    self.emit(call, "call.dtmf.received", {"digit": key}, client_state=cs)
                    await self.pause(call)
                    if terminator and key == terminator:
                        break
                    state.digits += key
                    if len(state.digits) >= high:
                        break
                if state.digits:
                    ok = low <= len(state.digits) <= high and all(d in valid for d in state.digits)
                    status = "valid" if ok else "invalid"
                elif entry:
                    status = "invalid"  # only the terminator was pressed
                call.keypad = None
                fields = {"digits": state.digits, "status": status}
                self.emit(call, "call.gather.ended", fields, client_state=cs)
            finally:
                if call.keypad is state and call.alive:
                    call.keypad = None

        return gather

    def _stop_gather(self, call: SimCall, cs: str | None) -> Effect:
        async def stop() -> None:
            if call.keypad is None and call.ai is None:
                return
            if call.current_kind in ("keypad", "ai") and call.current is not None:
                call.current.cancel()
            if call.keypad is not None:
                kp, call.keypad = call.keypad, None
                fields = {"digits": kp.digits, "status": "cancelled"}
                self.emit(call, "call.gather.ended", fields, client_state=cs)
            if call.ai is not None:
                self.end_ai(call, "invalid")

        return stop
