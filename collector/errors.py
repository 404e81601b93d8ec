"""Errors, arranged as one tree; each class also derives from the built-in that fits, so
`except ValueError` still catches a bad value of ours:

CollectorError
├─ ConfigurationError (ValueError)  bad settings, forms or sinks: start-up refuses to go on
├─ FormsInvalid (ValueError)        the forms cannot be used; `problems` lists them all
├─ ScriptError (ValueError)         a simulated caller's script that cannot be read
├─ InboundError (ValueError)        a webhook we refuse; carries the HTTP status to answer
│  ├─ SignatureInvalid              401: missing or bad signature, timestamp out of window
│  ├─ PayloadInvalid                400: not JSON, not an object, no id/payload, ...
│  └─ PayloadTooLarge               413
├─ CommandRejected                  Telnyx refused a command for good (4xx)
├─ CommandTransient                 a command that may not have arrived (timeout, 429, 5xx)
├─ DeliveryError                    a sink could not take a submission; `retryable`
└─ StoreRefused (ValueError)        the store refused a step's rows themselves (every time)

The HTTP edge's own errors (collector.web) are not here yet.
"""

from __future__ import annotations

from collections.abc import Iterable

# Telnyx's codes for a call that has already ended / an invalid call control id
CALL_GONE_CODES = frozenset({"90018", "90015"})


class CollectorError(Exception):
    """Root of collector's own errors."""


class ConfigurationError(CollectorError, ValueError):
    """The configuration cannot run; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class FormsInvalid(CollectorError, ValueError):
    """The forms cannot be used; `problems` lists every problem found (one line each)."""

    def __init__(self, problems: Iterable[object]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ScriptError(CollectorError, ValueError):
    """A caller script that cannot be read."""


class InboundError(CollectorError, ValueError):
    """A webhook request we refuse, with the status to answer."""

    status_code = 400
    code = "bad_request"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class SignatureInvalid(InboundError):
    status_code = 401
    code = "invalid_signature"


class PayloadInvalid(InboundError):
    status_code = 400
    code = "invalid_payload"


class PayloadTooLarge(InboundError):
    status_code = 413
    code = "payload_too_large"


class CommandRejected(CollectorError):
    """Telnyx refused the command for good (a 4xx other than 408/409/429)."""

    def __init__(self, status: int, code: str | None, detail: str) -> None:
        super().__init__(f"{status} {code or ''} {detail}".strip())
        self.status = status
        self.code = code
        self.detail = detail

    @property
    def call_gone(self) -> bool:
        return self.code in CALL_GONE_CODES or self.status == 404


class CommandTransient(CollectorError):
    """The command may not have arrived: a timeout, a connection error, 429 or 5xx."""


class DeliveryError(CollectorError):
    """A delivery failed; `retryable` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class StoreRefused(CollectorError, ValueError):
    """The store refused a step's rows themselves (a constraint, a value it cannot bind):
    the same rows fail the same way on every redelivery. The store's own error is the
    `__cause__`. Any other store error is the store's state at the moment (locked, I/O)."""
