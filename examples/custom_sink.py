"""A custom sink: anything with `async deliver(submission)` can receive submissions.

Use it from collector.toml (with this folder on PYTHONPATH):

    [[sinks]]
    name = "crm"
    type = "python"
    target = "custom_sink:CrmSink"
    endpoint = "https://crm.example.com/leads"   # passed to __init__ as a keyword

or register it in code before the server starts:

    from collector.sinks import register_sink
    register_sink("crm", lambda *, name, options, base_dir: CrmSink(**options))
"""

from __future__ import annotations

from collector.sinks import DeliveryError, Submission


class CrmSink:
    """Posts completed leads to a CRM (printed here, to keep the example self-contained)."""

    def __init__(self, endpoint: str = "https://crm.example.com/leads") -> None:
        self.endpoint = endpoint
        self.seen: set[str] = set()

    async def start(self) -> None:
        """Open connections here; a sink that is down at start-up only delays delivery."""

    async def deliver(self, submission: Submission) -> None:
        # Deliveries are retried after failures and crashes: make them idempotent on
        # submission_id (here, a set; in a real CRM, an upsert keyed by it).
        sid = submission["submission_id"]
        if sid in self.seen:
            return
        if submission["status"] != "completed":
            raise DeliveryError("this CRM only takes completed leads", retryable=False)
        print(f"POST {self.endpoint} {submission['form']} {submission['data']}")
        self.seen.add(sid)

    async def close(self) -> None:
        """Release connections here."""
