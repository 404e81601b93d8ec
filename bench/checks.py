"""What the server must have done for the events it acknowledged: commands and submissions.

Every acknowledged trigger webhook must have produced its command at the fake Telnyx
(answer <- call.initiated, gather_using_ai <- call.answered, speak <- call.ai_gather.ended,
hangup <- call.speak.ended), and every call whose call.ai_gather.ended was acknowledged
must have exactly one line in the JSONL sink.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from bench.events import TRIGGERS, Event
from bench.sender import Sent


def get_json(url: str, timeout: float = 30) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def jsonl_lines(path: Path | list[Path]) -> list[dict[str, Any]]:
    """The lines of a JSONL sink's file (of each instance's, for several)."""
    if isinstance(path, list):
        return [line for one in path for line in jsonl_lines(one)]
    if not path.exists():
        return []
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def wait_until_stable(read: Any, target: int, timeout: float = 30.0, quiet: float = 3.0) -> int:
    """Poll `read()` until it reaches `target`, or stops changing for `quiet` s."""
    deadline = time.monotonic() + timeout
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline and value < target:
        time.sleep(0.2)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since > quiet:
            break
    return int(value)


def commit_counts(server_url: str | list[str]) -> dict[str, float]:
    """The collector's group-commit metrics now: commits, jobs, and commits per bucket (of
    every instance together, for several)."""
    from prometheus_client.parser import text_string_to_metric_families

    if isinstance(server_url, list):
        total: Counter[str] = Counter()
        for url in server_url:
            total.update(commit_counts(url))
        return dict(total)
    with urllib.request.urlopen(f"{server_url}/metrics", timeout=30) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "collector_store_commit_seconds_bucket":
                out[f"le {sample.labels['le']}"] = sample.value
            elif sample.name == "collector_store_commit_seconds_count":
                out["commits"] = sample.value
            elif sample.name == "collector_store_committed_jobs_total":
                out["jobs"] = sample.value
    return out


def commit_stats(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Group commits between two snapshots: how many, jobs per commit, how many were slow."""
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    commits = delta.get("commits", 0.0)
    bounds = sorted(float(k[3:]) for k in delta if k.startswith("le ") and k != "le +Inf")
    slowest = None  # upper bound (ms) of the slowest commit's bucket
    below = 0.0
    for bound in bounds:
        if delta[f"le {bound}"] > below:
            slowest, below = bound * 1000, delta[f"le {bound}"]
    if commits > below:
        slowest = math.inf
    return {
        "commits": int(commits),
        "jobs_per_commit": delta.get("jobs", 0.0) / commits if commits else None,
        "over_50ms": int(commits - delta.get("le 0.05", commits)),
        "slowest_bucket_ms": slowest,
    }


def post(url: str) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30) as r:
        return json.loads(r.read())


def account(
    acked: Iterable[Event],
    api_url: str,
    jsonl: Path | list[Path],
    ignore: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Wait for the outbox and the sink to drain, then compare with what was acknowledged.

    Submissions of the calls in `ignore` (the warm-up's) are not counted.
    """

    def lines() -> list[dict[str, Any]]:
        return [x for x in jsonl_lines(jsonl) if x["call"]["call_control_id"] not in ignore]

    acked = list(acked)
    trigger_of = {v: k for k, v in TRIGGERS.items()}
    expected = {(ev.ccid, trigger_of[ev.type]) for ev in acked if ev.type in trigger_of}
    want_subs = {ev.ccid for ev in acked if ev.type == "call.ai_gather.ended"}
    completed = {ev.ccid for ev in acked if ev.last}
    wait_until_stable(lambda: get_json(f"{api_url}/stats")["total"], len(expected))
    wait_until_stable(lambda: len(lines()), len(want_subs))
    records = get_json(f"{api_url}/commands")
    seen = {(r["ccid"], r["action"]) for r in records}
    delivered = lines()
    sub_calls = Counter(x["call"]["call_control_id"] for x in delivered)
    stats = get_json(f"{api_url}/stats")
    return {
        "commands_expected": len(expected),
        "commands_sent": len(records),
        "commands_by_action": stats["by_action"],
        "commands_missing": len(expected - seen),
        "commands_repeated_ids": stats["repeated_command_ids"],
        "calls_completed": len(completed),
        "submissions_expected": len(want_subs),
        "submissions_delivered": len(delivered),
        "submissions_unique": len({x["submission_id"] for x in delivered}),
        "submissions_missing": len(want_subs - set(sub_calls)),
        "submissions_duplicated": sum(n - 1 for n in sub_calls.values()),
        "statuses": dict(Counter(x["status"] for x in delivered)),
    }


def command_latency(sent: list[Sent], api_url: str) -> dict[str, Any]:
    """Webhook sent -> its command at the fake Telnyx, in ms, overall and per action."""
    send_time = {(s.event.ccid, s.event.type): s.sent_at for s in sent if s.ok}
    first: dict[tuple[str, str], float] = {}
    for r in get_json(f"{api_url}/commands"):
        key = (r["ccid"], r["action"])
        first[key] = min(first.get(key, math.inf), r["at"])
    per: dict[str, list[float]] = {a: [] for a in TRIGGERS}
    before = 0  # commands that left before their webhook: a timer decided them
    for (ccid, action), at in first.items():
        t = send_time.get((ccid, TRIGGERS.get(action, "")))
        if t is None:
            continue
        if at < t:
            before += 1
            continue
        per[action].append((at - t) * 1000)
    every = [x for v in per.values() for x in v]
    return {
        "p50_ms": percentile(every, 50),
        "p99_ms": percentile(every, 99),
        "max_ms": max(every) if every else float("nan"),
        "samples": len(every),
        "timer_driven": before,
        "by_action": {
            a: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "n": len(v)}
            for a, v in per.items()
        },
    }


def ack_latency(sent: list[Sent]) -> dict[str, float]:
    ms = [(s.acked_at - s.sent_at) * 1000 for s in sent if s.ok]
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
    }
