"""The simulated voice AI: what the AI and the caller say in AI gathers and assistants.

`gather_using_ai` plays the caller's planned turns (`caller.ScriptedCaller.plan_ai_gather`)
as a conversation; `ai_assistant_start` plays a short one. Both emit through the
network that runs them (`Line`: what they use of `network.Network`). Where Telnyx leaves
the behaviour open:

* history updates and partial results are sent only when the gather asked for them
  (`send_message_history_updates`, `send_partial_results`), as Telnyx does;
* after `ai_assistant_start` the caller says goodbye and hangs up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from collector.simulator.calls import (
    DEFAULT_LLM,
    DEFAULT_STT,
    DEFAULT_VOICE,
    AiGatherState,
    SimCall,
    conversation_ended_fields,
    iso_now,
)
from collector.simulator.effect import Effect, mapping_or_empty, media, str_or

__all__ = ["Line", "ai_gather", "assistant_conversation", "text_messages"]


class Line(Protocol):
    """What a conversation uses of the network that runs it (`network.Network`)."""

    def emit(
        self,
        call: SimCall,
        event_type: str,
        fields: Mapping[str, Any] | None = None,
        *,
        client_state: str | None,
        parties: bool = True,
    ) -> None: ...

    async def pause(self, call: SimCall) -> None: ...

    def hangup_now(
        self, call: SimCall, source: str, cause: str, client_state: str | None = None
    ) -> None: ...

    def end_ai(self, call: SimCall, status: str) -> None: ...


def text_messages(value: Any) -> list[dict[str, str]]:
    """The user/assistant text messages of a `message_history` / `messages` list."""
    if not isinstance(value, list):
        return []
    return [
        {"role": m["role"], "content": m["content"]}
        for m in value
        if isinstance(m, Mapping)
        and m.get("role") in ("user", "assistant")
        and isinstance(m.get("content"), str)
    ]


def ai_gather(
    net: Line, call: SimCall, body: dict[str, Any], cs: str | None, conversation_id: str
) -> Effect:
    """What follows `gather_using_ai`: the conversation, then its result (or a hangup)."""
    greeting = body.get("greeting")
    plan = call.caller.plan_ai_gather(
        mapping_or_empty(body.get("parameters")), greeting if isinstance(greeting, str) else None
    )
    history = text_messages(body.get("message_history"))
    history_updates = body.get("send_message_history_updates") is True
    partials = body.get("send_partial_results") is True
    assistant = mapping_or_empty(body.get("assistant"))
    transcription = mapping_or_empty(body.get("transcription"))

    @media("ai")
    async def gather() -> None:
        state = AiGatherState(
            conversation_id,
            cs,
            history=list(history),
            required=plan.required,
            stamps=[iso_now("milliseconds")] * len(history),
            llm_model=str_or(assistant.get("model"), DEFAULT_LLM),
            stt_model=str_or(transcription.get("model"), DEFAULT_STT),
            voice=str_or(body.get("voice"), DEFAULT_VOICE),
        )
        call.ai = state
        await net.pause(call)
        fields: dict[str, Any] = {"calling_party_type": "pstn", "conversation_id": conversation_id}
        net.emit(call, "call.conversation.created", fields, client_state=cs)
        answered = 0
        for turn in plan.turns:
            if plan.hangup_after_answers is not None and answered >= plan.hangup_after_answers:
                break
            await net.pause(call)
            for role, text in (("assistant", turn.question), ("user", turn.reply)):
                state.history.append({"role": role, "content": text})
                state.stamps.append(iso_now("milliseconds"))
            if turn.answered:
                state.result[turn.field] = turn.value
                answered += 1
            snapshot = [dict(m) for m in state.history]
            if history_updates:
                net.emit(
                    call,
                    "call.ai_gather.message_history_updated",
                    {"message_history": snapshot},
                    client_state=cs,
                )
            if partials and turn.answered:
                if history_updates:
                    await net.pause(call)
                fields = {"message_history": snapshot, "partial_results": dict(state.result)}
                net.emit(call, "call.ai_gather.partial_results", fields, client_state=cs)
        await net.pause(call)
        if plan.hangup_after_answers is not None:
            net.hangup_now(call, "caller", "normal_clearing")
            return
        net.end_ai(call, plan.status(state.result))
        if plan.hangup_after_gather:
            await net.pause(call)
            net.hangup_now(call, "caller", "normal_clearing")

    return gather


def assistant_conversation(
    net: Line, call: SimCall, body: dict[str, Any], cs: str | None, state: AiGatherState
) -> Effect:
    """What follows `ai_assistant_start`: a greeting, the caller's goodbye, a hangup."""
    for m in text_messages(body.get("message_history")):
        state.history.append(m)
        state.stamps.append(iso_now("milliseconds"))
    greeting = str_or(body.get("greeting"), "") or "How else can I help you today?"
    history_updates = body.get("send_message_history_updates") is True

    @media("assistant")
    async def converse() -> None:
        if call.assistant is not state:
            return  # stopped before it started
        await net.pause(call)
        fields: dict[str, Any] = {
            "calling_party_type": "pstn",
            "conversation_id": state.conversation_id,
        }
        net.emit(call, "call.conversation.created", fields, client_state=cs)
        await net.pause(call)
        for role, text in (("assistant", greeting), ("user", "That's all, thank you. Bye!")):
            state.history.append({"role": role, "content": text})
            state.stamps.append(iso_now("milliseconds"))
        if history_updates:
            snapshot = [dict(m) for m in state.history]
            fields = {"message_history": snapshot}
            net.emit(call, "call.ai_gather.message_history_updated", fields, client_state=cs)
        await net.pause(call)
        if call.assistant is state:
            call.assistant = None
            ended = conversation_ended_fields(state)
            net.emit(call, "call.conversation.ended", ended, client_state=cs)
        await net.pause(call)
        net.hangup_now(call, "caller", "normal_clearing")

    return converse
