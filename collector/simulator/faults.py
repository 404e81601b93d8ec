"""Injected Call Control failures: Telnyx answering 429, 5xx, or too late.

A test or the soak suite arms faults on a `FakeTelnyx` through `fake.faults`; each armed
fault is spent on the next matching command (`POST /v2/calls/{id}/actions/{action}`, or
`POST /v2/calls`: action `dial`):

    fake.faults.arm(429)                       # the next command gets 429, not applied
    fake.faults.arm(503, action="hangup")      # the next hangup gets 503, not applied
    fake.faults.arm(422, action="dial")        # the next dial is refused for good
    fake.faults.arm("timeout", delay=11.0)     # the next command is applied, but its
                                               # response comes only after 11 s

A status fault answers with Telnyx's error body before anything else is looked at (the
command is not applied, not recorded in `fake.requests` and its `command_id` is not
remembered), as a rate limiter or an overloaded front end would. A `timeout` fault
applies the command at once (recorded, its webhooks start) and then holds the response
for `delay` seconds, so a client whose timeout is shorter sees a timeout although the
command took effect: its retry with the same `command_id` is a repeat the fake dedupes
(`fake.duplicates`). Every fault spent is appended to `fake.faults.spent`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["CommandFault", "CommandFaults"]

_TITLES = {
    422: ("10015", "Invalid parameter"),
    429: ("10011", "Too many requests"),
    500: ("10007", "Unexpected error"),
    502: ("10007", "Bad gateway"),
    503: ("10007", "Service unavailable"),
}


@dataclass(frozen=True, slots=True)
class CommandFault:
    """One armed failure: an HTTP status, or `timeout` (apply, then answer late)."""

    kind: int | str  # 429, 500, 502, 503 or "timeout"
    action: str | None = None  # only commands of this action; None: any
    delay: float = 11.0  # for "timeout": how long the response is held (seconds)

    @property
    def status(self) -> int | None:
        return self.kind if isinstance(self.kind, int) else None

    def error(self) -> tuple[str, str]:
        """Telnyx's error code and title for a status fault."""
        assert self.status is not None
        return _TITLES.get(self.status, ("10007", "Unexpected error"))


@dataclass(slots=True)
class SpentFault:
    fault: CommandFault
    call_control_id: str
    action: str
    command_id: str | None
    at: float


@dataclass
class CommandFaults:
    """Armed faults, spent in order by the commands they match."""

    armed: list[CommandFault] = field(default_factory=list)
    spent: list[SpentFault] = field(default_factory=list)

    def arm(
        self, kind: int | str, *, action: str | None = None, delay: float = 11.0, count: int = 1
    ) -> None:
        if kind != "timeout" and not (isinstance(kind, int) and 400 <= kind <= 599):
            raise ValueError(f"a fault is an HTTP status (4xx/5xx) or 'timeout', not {kind!r}")
        self.armed.extend(CommandFault(kind, action, delay) for _ in range(count))

    def take(
        self, call_control_id: str, action: str, command_id: str | None
    ) -> CommandFault | None:
        """The first armed fault matching `action`, removed and recorded; else None."""
        for i, fault in enumerate(self.armed):
            if fault.action is None or fault.action == action:
                del self.armed[i]
                self.spent.append(
                    SpentFault(fault, call_control_id, action, command_id, time.time())
                )
                return fault
        return None
