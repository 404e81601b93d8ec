"""The measurements: full load (collector, seed, floor; the collector on PostgreSQL, one
instance and two behind a round-robin), 500 events/s, 1,000 open calls.

Every scenario starts its own processes in a fresh folder and stops them (SIGTERM) after.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from bench import checks, postgres, servers
from bench.events import Event, interleave, make_calls, make_lanes
from bench.script import current_script
from bench.sender import send
from bench.wrk import WrkResult, run_wrk

LANES = 16  # wrk threads = connections
WINDOW = 8  # calls in flight per lane
WARM_UP_CALLS = 3 * LANES  # replayed to each server before its measured pass


@contextmanager
def workdir(name: str, keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"collector-bench-{name}-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def pool(rate_cap: float, seconds: float) -> list[list[Event]]:
    """Enough calls for `seconds` at `rate_cap` events/s, dealt to the wrk lanes."""
    calls = math.ceil(rate_cap * seconds / current_script().events_per_call)
    calls = LANES * math.ceil(calls / LANES)
    return make_lanes(calls, LANES, WINDOW)


def warm_up_pool() -> list[list[Event]]:
    return make_lanes(WARM_UP_CALLS, LANES, WINDOW)


def _warm_up(url: str, warm: list[list[Event]], key: SigningKey, folder: Path) -> None:
    r = run_wrk(url, warm, key, folder, 60)
    if r.failed or not r.exhausted:
        raise RuntimeError(f"warm-up failed: {r.failed} non-2xx, {r.errors}")


def prefix(lanes: list[list[Event]], events: int) -> list[list[Event]]:
    per = math.ceil(events / len(lanes))
    return [lane[:per] for lane in lanes]


def _wrk_row(r: WrkResult) -> dict[str, Any]:
    return {
        "events_per_s": r.rate,
        "events": r.events,
        "non_2xx": r.failed,
        "socket_errors": {k: v for k, v in r.errors.items() if k != "status" and v},
        "seconds": r.seconds,
        "ran_out_of_events": r.exhausted,
        "ack_ms": r.latency_ms,
    }


def _acked(lanes: list[list[Event]], r: WrkResult) -> Iterator[Event]:
    for lane, n, bad in zip(lanes, r.acked, r.bad, strict=True):
        failed = set(bad)
        yield from (ev for pos, ev in enumerate(lane[:n], 1) if pos not in failed)


def collector_full_load(
    lanes: list[list[Event]],
    warm: list[list[Event]],
    key: SigningKey,
    public_key: str,
    seconds: float,
    keep: bool,
    profile: Path | None = None,
) -> dict[str, Any]:
    with (
        workdir("load", keep) as d,
        servers.fake_api(d) as api,
        servers.collector(d, public_key, api.url) as srv,
    ):
        url = f"{srv.url}/webhooks/telnyx"
        _warm_up(url, warm, key, d / "warm-up")
        warm_calls = frozenset(ev.ccid for lane in warm for ev in lane)
        checks.account((ev for lane in warm for ev in lane), api.url, d / "results.jsonl")
        checks.post(f"{api.url}/reset")
        spy = _start_py_spy(srv, profile, seconds) if profile else None
        meter = servers.CpuMeter(srv)
        commits = checks.commit_counts(srv.url)
        r = run_wrk(url, lanes, key, d / "requests", seconds, meter)
        if spy is not None:
            spy.wait()
        result = {**_wrk_row(r), **meter.as_dict()}
        result["store"] = checks.commit_stats(commits, checks.commit_counts(srv.url))
        jsonl = d / "results.jsonl"
        result.update(checks.account(_acked(lanes, r), api.url, jsonl, ignore=warm_calls))
        result["peak_rss_mb"] = srv.peak_rss_mb()
        return result


def postgres_full_load(
    lanes: list[list[Event]],
    warm: list[list[Event]],
    key: SigningKey,
    public_key: str,
    seconds: float,
    keep: bool,
    instances: int = 1,
    profile: Path | None = None,
) -> dict[str, Any]:
    """The collector's full-load pass on a fresh PostgreSQL database: one instance, or
    `instances` on core 0 together behind the round-robin proxy (bench/round_robin.py,
    on core 1), which sends each request to the next instance."""
    with (
        workdir(f"pg{instances}", keep) as d,
        postgres.scratch_database() as database_url,
        servers.fake_api(d) as api,
        ExitStack() as running,
    ):
        srvs = [
            running.enter_context(
                servers.collector(
                    d / f"instance-{n}", public_key, api.url, database_url, name=f"collector-{n}"
                )
            )
            for n in range(instances)
        ]
        front = srvs[0].url
        proxy = None
        if instances > 1:
            proxy = running.enter_context(servers.round_robin(d, [s.url for s in srvs]))
            front = proxy.url
        url = f"{front}/webhooks/telnyx"
        files = [s.workdir / "results.jsonl" for s in srvs]
        _warm_up(url, warm, key, d / "warm-up")
        warm_calls = frozenset(ev.ccid for lane in warm for ev in lane)
        checks.account((ev for lane in warm for ev in lane), api.url, files)
        checks.post(f"{api.url}/reset")
        spy = _start_py_spy(srvs[0], profile, seconds) if profile else None
        meter = servers.CpuMeter(srvs, postgres=postgres.ServerCpu(database_url))
        urls = [s.url for s in srvs]
        commits = checks.commit_counts(urls)
        spread = checks.get_json(f"{proxy.url}/_rr/stats")["sent"] if proxy else []
        r = run_wrk(url, lanes, key, d / "requests", seconds, meter)
        if spy is not None:
            spy.wait()
        result = {**_wrk_row(r), **meter.as_dict(), "instances": instances}
        result["store"] = checks.commit_stats(commits, checks.commit_counts(urls))
        result.update(checks.account(_acked(lanes, r), api.url, files, ignore=warm_calls))
        result["submissions_by_instance"] = [
            sum(x["call"]["call_control_id"] not in warm_calls for x in checks.jsonl_lines(f))
            for f in files
        ]
        if proxy is not None:
            sent = checks.get_json(f"{proxy.url}/_rr/stats")["sent"]
            result["requests_by_instance"] = [a - b for a, b in zip(sent, spread, strict=True)]
        result["peak_rss_mb"] = max(s.peak_rss_mb() for s in srvs)
        return result


def _start_py_spy(srv: servers.Process, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy on core 1: 100 samples/s, by function, per thread, idle samples left out."""
    assert srv.proc is not None
    spy = str(Path(sys.executable).parent / "py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    options = ["--format", "raw", "--function", "--threads", "-r", "100", "-d", str(int(seconds))]
    argv = ["taskset", "-c", servers.LOAD_CORE, spy, "record", "--pid", str(srv.proc.pid)]
    return subprocess.Popen(
        [*argv, *options, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def baseline_full_load(
    kind: str,
    lanes: list[list[Event]],
    warm: list[list[Event]],
    key: SigningKey,
    public_key: str,
    seconds: float,
    keep: bool,
) -> dict[str, Any]:
    """The seed's pattern or the floor, on the same events."""
    with workdir(kind, keep) as d:
        make = servers.seed if kind == "seed" else servers.floor
        with make(d, public_key) as srv:
            url = f"{srv.url}/webhooks/telnyx"
            _warm_up(url, warm, key, d / "warm-up")
            meter = servers.CpuMeter(srv)
            r = run_wrk(url, lanes, key, d / "requests", seconds, meter)
            result = {**_wrk_row(r), **meter.as_dict()}
            result["peak_rss_mb"] = srv.peak_rss_mb()
            return result


def paced(
    key: SigningKey, public_key: str, rate: float, seconds: float, keep: bool
) -> dict[str, Any]:
    """A steady `rate` events/s from the Python sender: webhook-in to command-out latency."""
    calls = math.ceil(rate * seconds / current_script().events_per_call)
    events = interleave(make_calls(calls), window=64)
    with (
        workdir("paced", keep) as d,
        servers.fake_api(d) as api,
        servers.collector(d, public_key, api.url) as srv,
    ):
        meter = servers.CpuMeter(srv)
        commits = checks.commit_counts(srv.url)
        meter.start()
        sent = send(f"{srv.url}/webhooks/telnyx", events, key, rate=rate, concurrency=64)
        meter.stop()
        took = max(x.acked_at for x in sent) - min(x.sent_at for x in sent)
        result: dict[str, Any] = {
            "target_rate": rate,
            "events_per_s": sum(s.ok for s in sent) / took,
            "events": sum(s.ok for s in sent),
            "non_2xx": sum(not s.ok for s in sent),
            "ack_ms": checks.ack_latency(sent),
            **meter.as_dict(),
            "store": checks.commit_stats(commits, checks.commit_counts(srv.url)),
        }
        result.update(checks.account((s.event for s in sent if s.ok), api.url, d / "results.jsonl"))
        result["command_ms"] = checks.command_latency(sent, api.url)
        result["peak_rss_mb"] = srv.peak_rss_mb()
        return result


def concurrent_calls(key: SigningKey, public_key: str, calls: int, keep: bool) -> dict[str, Any]:
    """`calls` calls open at once, each mid-gather with partial results; then all complete."""
    flows = make_calls(calls)
    # initiated, answered, and (up to) three fields' partial results and history
    split = 2 + 2 * min(3, len(current_script().questions))
    opening = interleave([f[:split] for f in flows], window=calls, stagger=False)
    closing = interleave([f[split:] for f in flows], window=calls, stagger=False)
    with (
        workdir("concurrent", keep) as d,
        servers.fake_api(d) as api,
        servers.collector(d, public_key, api.url) as srv,
    ):
        url = f"{srv.url}/webhooks/telnyx"
        first = send(url, opening, key, concurrency=16)
        checks.wait_until_stable(lambda: checks.get_json(f"{api.url}/stats")["total"], 2 * calls)
        open_rss = srv.rss_mb()
        open_commands = checks.get_json(f"{api.url}/stats")["by_action"]
        second = send(url, closing, key, concurrency=16)
        sent = first + second
        result: dict[str, Any] = {
            "calls": calls,
            "events": sum(s.ok for s in sent),
            "non_2xx": sum(not s.ok for s in sent),
            "rss_all_open_mb": open_rss,
            "commands_while_open": open_commands,
            "ack_ms": checks.ack_latency(sent),
        }
        result.update(checks.account((s.event for s in sent if s.ok), api.url, d / "results.jsonl"))
        result["command_ms"] = checks.command_latency(sent, api.url)
        result["peak_rss_mb"] = srv.peak_rss_mb()
        return result
