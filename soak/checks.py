"""What a run counts at the end: every call's submission in every sink exactly once, no
torn JSONL line, no command applied twice, and how the webhooks to the server fared."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.simulator.fake_telnyx import FakeTelnyx
from soak.stack import Stack


def jsonl_lines(path: Path) -> int:
    """Complete lines in the JSONL file now (cheap: counts newlines)."""
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def sqlite_rows(path: Path) -> list[str]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return [r[0] for r in conn.execute("SELECT submission_id FROM submissions")]
    except sqlite3.OperationalError:
        return []  # the table is made on the first delivery
    finally:
        conn.close()


def delivered_everywhere(st: Stack) -> bool:
    """Every placed call has reached every sink (counts only; `tally` checks identities)."""
    n = len(st.calls)
    return (
        jsonl_lines(st.jsonl) >= n
        and len(st.receiver.by_submission) >= n
        and len(set(sqlite_rows(st.sqlite))) >= n
    )


@dataclass
class Tally:
    calls: int = 0
    jsonl_lines: int = 0
    jsonl_torn: int = 0  # lines in the file that are not whole JSON (must be 0)
    jsonl_quarantined: int = 0  # lines the sink moved to results.jsonl.torn at start-up
    jsonl_missing: int = 0
    jsonl_twice: int = 0
    sqlite_rows: int = 0
    sqlite_missing: int = 0
    webhook_missing: int = 0
    webhook_twice: int = 0  # one submission under two webhook-ids
    webhook_repeats: int = 0  # the same webhook-id again (a receiver dedupes it)
    webhook_bad_signatures: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    commands: int = 0
    command_ids_twice: int = 0  # a command_id the fake accepted twice (must be 0)
    command_repeats_deduped: int = 0  # repeats of a command_id the fake answered from memory
    commands_applied_twice: int = 0  # same call, action and body under two command_ids
    commands_rejected: int = 0  # bodies that broke the SDK's types
    commands_refused: int = 0  # call-state refusals (e.g. 90018 call ended)
    faults_spent: Counter[str] = field(default_factory=Counter)
    webhooks: int = 0  # webhook events the fake sent (first attempts)
    webhook_attempts: Counter[str] = field(default_factory=Counter)  # by outcome
    webhooks_undelivered: int = 0
    log_levels: Counter[str] = field(default_factory=Counter)
    log_events: Counter[str] = field(default_factory=Counter)  # retries the server logged

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        bad = {
            "a JSONL line is not whole JSON": self.jsonl_torn,
            "a call has no JSONL line": self.jsonl_missing,
            "a submission has two JSONL lines": self.jsonl_twice,
            "a call has no SQLite row": self.sqlite_missing,
            "a call never reached the webhook receiver": self.webhook_missing,
            "a submission reached the receiver under two webhook-ids": self.webhook_twice,
            "a webhook signature did not verify": self.webhook_bad_signatures,
            "a command_id was accepted twice": self.command_ids_twice,
            "a command was applied twice": self.commands_applied_twice,
            "a command body broke the SDK's types": self.commands_rejected,
            "a webhook was given up on": self.webhooks_undelivered,
        }
        return [f"{what} ({n})" for what, n in bad.items() if n]


def _outcome(status: int | None, error: str | None) -> str:
    if status is None:
        return "no answer (" + (error or "?").split(":", 1)[0] + ")"
    return f"{status // 100}xx" if status < 500 else str(status)


class Accumulator:
    """The fake's records of commands and webhook attempts, folded into counts.

    `absorb` moves what the fake recorded since the last call into counters and empties
    those lists, so a long soak keeps counting without keeping every record."""

    def __init__(self) -> None:
        self.commands = 0
        self.command_ids: Counter[str] = Counter()
        self.bodies: Counter[int] = Counter()  # hash of (call, action, body sans command_id)
        self.webhooks = 0  # first attempts
        self.attempts: Counter[str] = Counter()

    def absorb(self, fake: FakeTelnyx) -> tuple[int, int]:
        """Fold in and drop the new records; returns (new webhooks, new commands)."""
        requests, fake.requests[:] = list(fake.requests), []
        deliveries, fake.sender.deliveries[:] = list(fake.sender.deliveries), []
        for c in requests:
            if c.command_id:
                self.command_ids[c.command_id] += 1
            if isinstance(c.body, dict):
                body = {k: v for k, v in c.body.items() if k != "command_id"}
                key = (c.call_control_id, c.action, json.dumps(body, sort_keys=True))
                self.bodies[hash(key)] += 1
        first = sum(1 for d in deliveries if d.attempt == 1)
        self.commands += len(requests)
        self.webhooks += first
        self.attempts.update(_outcome(d.status_code, d.error) for d in deliveries)
        return first, len(requests)


def tally(st: Stack, acc: Accumulator | None = None) -> Tally:
    t = Tally(calls=len(st.calls))
    placed = set(st.calls)
    data = st.jsonl.read_bytes() if st.jsonl.exists() else b""
    records: list[dict[str, Any]] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    else:
        t.jsonl_torn += 1 if lines else 0  # a last line without its newline
        lines = lines[:-1]
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            t.jsonl_torn += 1
    t.jsonl_lines = len(records)
    torn = Path(f"{st.jsonl}.torn")
    if torn.exists():
        t.jsonl_quarantined = torn.read_bytes().count(b"\n")
    ids = Counter(r["submission_id"] for r in records)
    t.jsonl_twice = sum(1 for n in ids.values() if n > 1)
    by_call = {r["call"]["call_control_id"]: r for r in records}
    t.jsonl_missing = len(placed - set(by_call))
    t.statuses = Counter(r["status"] for r in records)
    wanted = {
        r["submission_id"] for r in by_call.values() if r["call"]["call_control_id"] in placed
    }

    rows = sqlite_rows(st.sqlite)
    t.sqlite_rows = len(rows)
    t.sqlite_missing = len(wanted - set(rows)) + (len(placed) - len(by_call.keys() & placed))

    got = st.receiver.by_submission
    t.webhook_missing = len(wanted - set(got)) + (len(placed) - len(by_call.keys() & placed))
    t.webhook_twice = sum(1 for hook_ids in got.values() if len(set(hook_ids)) > 1)
    t.webhook_repeats = sum(len(hook_ids) - len(set(hook_ids)) for hook_ids in got.values())
    t.webhook_bad_signatures = st.receiver.bad_signatures

    fake = st.fake
    acc = acc or Accumulator()
    acc.absorb(fake)
    t.commands = acc.commands
    t.command_ids_twice = sum(1 for n in acc.command_ids.values() if n > 1)
    t.command_repeats_deduped = len(fake.duplicates)
    t.commands_applied_twice = sum(n - 1 for n in acc.bodies.values() if n > 1)
    t.commands_rejected = len(fake.rejected)
    t.commands_refused = len(fake.refused)
    t.faults_spent = Counter(str(s.fault.kind) for s in fake.faults.spent)
    t.webhooks = acc.webhooks
    t.webhook_attempts = acc.attempts
    t.webhooks_undelivered = len(fake.undelivered)
    t.log_levels, t.log_events = st.server.log_summary()
    return t


def rows(t: Tally) -> list[tuple[str, str]]:
    """The tally as (what, figure) rows for the printed table."""

    def c(counter: Counter[str]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"

    return [
        ("calls placed", str(t.calls)),
        ("submissions by status (JSONL)", c(t.statuses)),
        ("JSONL lines / missing / twice", f"{t.jsonl_lines} / {t.jsonl_missing} / {t.jsonl_twice}"),
        ("JSONL torn lines in the file", str(t.jsonl_torn)),
        ("JSONL lines quarantined to .torn", str(t.jsonl_quarantined)),
        ("SQLite sink rows / missing", f"{t.sqlite_rows} / {t.sqlite_missing}"),
        ("webhook sink: missing / two webhook-ids", f"{t.webhook_missing} / {t.webhook_twice}"),
        ("webhook sink: repeats of a webhook-id (deduped)", str(t.webhook_repeats)),
        ("commands applied by the fake Telnyx", str(t.commands)),
        ("command_id accepted twice", str(t.command_ids_twice)),
        ("command_id repeats deduped by the fake", str(t.command_repeats_deduped)),
        ("same command applied under two ids", str(t.commands_applied_twice)),
        ("commands refused (call state) / rejected (body)",
         f"{t.commands_refused} / {t.commands_rejected}"),
        ("Telnyx faults injected", c(t.faults_spent)),
        ("webhooks sent to the server", str(t.webhooks)),
        ("webhook attempts by outcome", c(t.webhook_attempts)),
        ("webhooks given up on", str(t.webhooks_undelivered)),
        ("server log lines by level", c(t.log_levels)),
        ("server retries and repeats logged", c(t.log_events)),
    ]  # fmt: skip


def table(title: str, rows_: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows_)
    out = [title, "-" * len(title)]
    out += [f"{k.ljust(width)}  {v}" for k, v in rows_]
    return "\n".join(out)
