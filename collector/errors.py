"""Errors, arranged as a tree:

CollectorError
├─ ConfigurationError      bad settings, forms or sinks: start-up refuses to go on
└─ InboundError            a webhook we refuse; carries the HTTP status to answer with
   ├─ SignatureInvalid     401: missing or bad signature, or a timestamp out of window
   ├─ PayloadInvalid       400: not JSON, not an object, no id/payload, ...
   └─ PayloadTooLarge      413
"""

from __future__ import annotations


class CollectorError(Exception):
    """Root of collector's own errors."""


class ConfigurationError(CollectorError):
    """The configuration cannot run; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class InboundError(CollectorError):
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
