"""Commands: what decide() wants sent to Telnyx, in order, for one call.

A command's `body` is the exact JSON body of the Telnyx action (without `command_id`,
which the shell derives from the session id and `seq`, so a replayed decision produces the
same id and Telnyx drops the repeat). `retrieve_status` is not an action: it asks the shell
to look the call up and feed the answer back as a CallStatus event. `dial` is not an
action of a call either: it creates the call (`calls.dial`, POST /calls), so it is sent
before there is a call_control_id to address (its body is in wire form, `from`; the SDK's
method takes `dial_kwargs(body)`). Telnyx drops a repeated dial with the same command_id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

_COMMAND_NS = uuid.UUID("6f0c2b8e-7f1a-4d7e-9a51-3c2e0b9d4a11")

ANSWER = "answer"
HANGUP = "hangup"
SPEAK = "speak"
GATHER_USING_AI = "gather_using_ai"
GATHER_USING_SPEAK = "gather_using_speak"
GATHER_USING_AUDIO = "gather_using_audio"
GATHER = "gather"
GATHER_STOP = "gather_stop"
AI_ASSISTANT_START = "ai_assistant_start"
AI_ASSISTANT_STOP = "ai_assistant_stop"
AI_ASSISTANT_ADD_MESSAGES = "ai_assistant_add_messages"
RETRIEVE_STATUS = "retrieve_status"
DIAL = "dial"


@dataclass(frozen=True, slots=True)
class Command:
    """One Telnyx action for a call, numbered in the order it was decided."""

    action: str
    seq: int
    body: dict[str, Any] = field(default_factory=dict)
    decided_at: float = 0.0

    def command_id(self, session_id: str, retry: int = 0) -> str:
        """Deterministic idempotency key; `retry` > 0 mints a fresh one on purpose."""
        suffix = f"/{retry}" if retry else ""
        return str(uuid.uuid5(_COMMAND_NS, f"{session_id}/{self.seq}{suffix}"))


def dial_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """A dial body as the keyword arguments of the SDK's `calls.dial` (`from` is `from_`)."""
    return {("from_" if key == "from" else key): value for key, value in body.items()}
