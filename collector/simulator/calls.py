"""The fake Telnyx's records: simulated calls, recorded commands, and webhook payloads.

Payload fields follow the shapes Telnyx sends (tests/fixtures/telnyx/*.json): the common
`call_control_id`, `call_leg_id`, `call_session_id`, `connection_id`, `client_state`,
`from`, `to` (speak events carry no `from`/`to`), plus each event type's own fields.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from collector.simulator.caller import ScriptedCaller

__all__ = [
    "DEFAULT_CONNECTION_ID",
    "Delivery",
    "RecordedCommand",
    "RejectedCommand",
    "SimCall",
    "iso_now",
    "new_call_control_id",
]

DEFAULT_CONNECTION_ID = "2287104733592061441"
DEFAULT_LLM = "Qwen/Qwen3-235B-A22B"
DEFAULT_STT = "distil-whisper/distil-large-v2"
DEFAULT_VOICE = "Telnyx.KokoroTTS.af"


def iso_now(precision: str = "microseconds") -> str:
    """Now in UTC as Telnyx writes it: `2025-03-14T15:09:27.902114Z`."""
    now = dt.datetime.now(dt.UTC)
    return now.isoformat(timespec=precision).replace("+00:00", "Z")


def new_call_control_id() -> str:
    return "v3:" + secrets.token_urlsafe(39)


@dataclass(frozen=True, slots=True)
class RecordedCommand:
    """A command the fake accepted and acted on."""

    call_control_id: str
    action: str
    body: dict[str, Any]
    command_id: str | None
    at: float


@dataclass(frozen=True, slots=True)
class RejectedCommand:
    """A command the fake refused because its body broke the SDK's param types."""

    call_control_id: str | None
    action: str
    body: Any
    problems: list[str]
    at: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver one webhook."""

    event_id: str
    event_type: str
    call_control_id: str
    attempt: int
    url: str
    status_code: int | None  # None: no answer (timeout, connection refused)
    error: str | None
    at: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(slots=True)
class AiGatherState:
    """A running `gather_using_ai` (or assistant conversation) on a call."""

    conversation_id: str
    client_state: str | None
    history: list[dict[str, str]]
    result: dict[str, Any] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)  # one timestamp per history message
    started: float = field(default_factory=time.monotonic)
    llm_model: str = DEFAULT_LLM
    stt_model: str = DEFAULT_STT
    voice: str = DEFAULT_VOICE


@dataclass(slots=True)
class KeypadState:
    """A running keypad gather on a call."""

    client_state: str | None
    digits: str = ""


@dataclass(slots=True)
class SimCall:
    """One simulated call leg, as the fake Telnyx sees it."""

    call_control_id: str
    call_leg_id: str
    call_session_id: str
    connection_id: str
    from_: str
    to: str
    direction: str  # "incoming" | "outgoing"
    caller: ScriptedCaller
    alive: bool = True
    answered: bool = False
    client_state: str | None = None
    start_time: str = field(default_factory=iso_now)
    end_time: str | None = None
    webhook_url: str | None = None  # set by `webhook_url` on answer/dial
    events_sent: list[dict[str, Any]] = field(default_factory=list)
    # what is playing or gathering right now, and the tasks that produce this call's events
    ai: AiGatherState | None = None
    keypad: KeypadState | None = None
    speaking: bool = False  # a speak is playing
    speak_state: str | None = None  # the client_state of that speak
    assistant: AiGatherState | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    tail: asyncio.Task[None] | None = None  # the last activity queued
    current: asyncio.Task[None] | None = None  # the activity running now
    current_kind: str | None = None  # "ai", "keypad", "speak", "assistant", ...
    ended_monotonic: float | None = None

    @classmethod
    def new(
        cls,
        *,
        from_: str,
        to: str,
        direction: str,
        caller: ScriptedCaller,
        connection_id: str = DEFAULT_CONNECTION_ID,
        client_state: str | None = None,
    ) -> SimCall:
        return cls(
            call_control_id=new_call_control_id(),
            call_leg_id=str(uuid.uuid4()),
            call_session_id=str(uuid.uuid4()),
            connection_id=connection_id,
            from_=from_,
            to=to,
            direction=direction,
            caller=caller,
            client_state=client_state,
        )

    @property
    def event_types(self) -> list[str]:
        """The event types sent for this call so far, in order."""
        return [e["data"]["event_type"] for e in self.events_sent]

    def payload(self, client_state: str | None, *, with_parties: bool = True) -> dict[str, Any]:
        """The fields every webhook payload of this call carries."""
        p: dict[str, Any] = {
            "call_control_id": self.call_control_id,
            "call_leg_id": self.call_leg_id,
            "call_session_id": self.call_session_id,
            "connection_id": self.connection_id,
            "client_state": client_state,
        }
        if with_parties:
            p["from"] = self.from_
            p["to"] = self.to
        return p

    def retrieve_status(self) -> dict[str, Any]:
        """The body of `GET /v2/calls/{call_control_id}`."""
        data: dict[str, Any] = {
            "call_control_id": self.call_control_id,
            "call_leg_id": self.call_leg_id,
            "call_session_id": self.call_session_id,
            "is_alive": self.alive,
            "client_state": self.client_state,
            "record_type": "call",
            "start_time": self.start_time,
            "end_time": self.end_time,
        }
        if self.end_time is not None:
            start = dt.datetime.fromisoformat(self.start_time.replace("Z", "+00:00"))
            end = dt.datetime.fromisoformat(self.end_time.replace("Z", "+00:00"))
            data["call_duration"] = max(0, int((end - start).total_seconds()))
        return {"data": data}


def hangup_fields(call: SimCall, cause: str, source: str) -> dict[str, Any]:
    """The `call.hangup` payload's own fields."""
    return {
        "call_quality_stats": {
            "inbound": {
                "jitter_max_variance": "0.32",
                "jitter_packet_count": "0",
                "mos": "4.47",
                "packet_count": "5230",
                "skip_packet_count": "3",
            },
            "outbound": {"packet_count": "5187", "skip_packet_count": "0"},
        },
        "hangup_cause": cause,
        "hangup_source": source,
        "sip_hangup_cause": "unspecified" if call.direction == "incoming" else _sip_cause(cause),
        "start_time": call.start_time,
        "state": "hangup",
    }


def _sip_cause(cause: str) -> str:
    return {"no_answer": "480", "timeout": "408", "user_busy": "486", "call_rejected": "603"}.get(
        cause, "200" if cause == "normal_clearing" else "unspecified"
    )


def initiated_fields(call: SimCall) -> dict[str, Any]:
    """The `call.initiated` payload's own fields."""
    return {
        "caller_id_name": call.from_,
        "connection_codecs": "G722,PCMU,PCMA,G729,OPUS,VP8,H264",
        "direction": call.direction,
        "offered_codecs": "PCMU,PCMA,G722,telephone-event",
        "shaken_stir_attestation": "A",
        "shaken_stir_validated": True,
        "start_time": call.start_time,
        "state": "parked" if call.direction == "incoming" else "bridging",
    }


def conversation_ended_fields(state: AiGatherState) -> dict[str, Any]:
    """The `call.conversation.ended` payload's own fields."""
    provider, _, rest = state.voice.partition(".")
    model, _, voice_id = rest.partition(".")
    messages = [
        {"role": m["role"], "content": m["content"], "timestamp": stamp}
        for m, stamp in zip(state.history, state.stamps, strict=False)
    ]
    return {
        "calling_party_type": "pstn",
        "conversation_id": state.conversation_id,
        "duration_sec": max(0, round(time.monotonic() - state.started)),
        "llm_model": state.llm_model,
        "messages": messages,
        "stt_model": state.stt_model,
        "tts_model_id": model or provider,
        "tts_provider": provider.lower(),
        "tts_voice_id": voice_id or model,
    }
