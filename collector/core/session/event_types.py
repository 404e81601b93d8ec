"""The name each event is counted and recorded under: its webhook's `event_type`.

The events the shell makes itself (timers, command outcomes, cancels) are named
`collector.*`.
"""

from __future__ import annotations

from collector.core.session import events as E

# the webhook type of each event class (a ConversationEvent carries its own); the events
# the shell makes itself are named collector.*
_EVENT_TYPES: dict[type, str] = {
    E.CallInitiated: "call.initiated",
    E.CallAnswered: "call.answered",
    E.AiGatherPartial: "call.ai_gather.partial_results",
    E.AiGatherHistory: "call.ai_gather.message_history_updated",
    E.AiGatherEnded: "call.ai_gather.ended",
    E.KeypadGatherEnded: "call.gather.ended",
    E.SpeakEnded: "call.speak.ended",
    E.CallHangup: "call.hangup",
    E.MachineDetectionEnded: "call.machine.detection.ended",
    E.MachineGreetingEnded: "call.machine.greeting.ended",
    E.Timer: "collector.timer",
    E.CommandFailed: "collector.command_failed",
    E.CallStatus: "collector.call_status",
    E.Cancel: "collector.cancel",
    E.Dial: "collector.dial",
}
_PREMIUM: dict[type, str] = {
    E.MachineDetectionEnded: "call.machine.premium.detection.ended",
    E.MachineGreetingEnded: "call.machine.premium.greeting.ended",
}


def event_type_of(event: E.Event) -> str:
    """The type an event is counted and recorded under (its webhook's `event_type`)."""
    if isinstance(event, E.ConversationEvent) and event.event_type:
        return event.event_type
    if isinstance(event, E.MachineDetectionEnded | E.MachineGreetingEnded) and event.premium:
        return _PREMIUM[type(event)]
    return _EVENT_TYPES.get(type(event), "collector." + type(event).__name__.lower())
