"""`python -m bench` (make bench): the collector's throughput, latency and memory.

Runs, each against fresh processes: the collector (on SQLite; on PostgreSQL, one instance
and two behind a round-robin proxy), the seed's pattern and the bare floor under wrk at
full load; the collector at a steady 500 events/s (webhook-in to command-out latency);
1,000 calls open at once. Prints one table with the targets and
writes bench/results/latest.json. `--profile` instead runs the collector's full-load pass
under py-spy and prints its hot spots.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import postgres, profile, report, scenarios, script
from bench.servers import LOAD_CORE
from bench.wrk import wrk_binary

# events/s each server cannot beat on one core here; the pool is sized from these
RATE_CAPS = {
    "collector": 3500.0,
    "seed": 1500.0,
    "floor": 8000.0,
    "postgres": 3000.0,
    "postgres_pair": 3000.0,
}
PARTS = ("collector", "seed", "floor", "postgres", "postgres_pair", "paced", "concurrent")
PG_PARTS = {"postgres": 1, "postgres_pair": 2}  # instances


def _check_tools() -> None:
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench: needs 2 cores (server on core 0, load on core 1)")
    wrk_binary()
    for module, package in (("flask", "flask"), ("gunicorn", "gunicorn")):
        if importlib.util.find_spec(module) is None:
            raise SystemExit(f"bench: {package} is not installed (pip install {package})")


def _say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="full-load pass length cap")
    parser.add_argument("--rate", type=float, default=500.0, help="rate of the paced pass")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=1000, help="calls open at once")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the collector at full load with py-spy instead",
    )
    parser.add_argument(
        "--profile-store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the store of the --profile pass (postgres: a fresh database on the machine's)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument(
        "--form",
        type=Path,
        help="fill this form (its folder is the server's forms_dir) with its fields' example "
        "answers, instead of bench/forms/bench_contact.json",
    )
    args = parser.parse_args(argv)

    _check_tools()
    calls = script.use_form(args.form) if args.form else script.current_script()
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    from collector.simulator.signing import generate_keypair

    key, public_key = generate_keypair()
    results: dict[str, Any] = {
        "machine": report.machine(),
        "settings": {
            "seconds": args.seconds,
            "lanes": scenarios.LANES,
            "window": scenarios.WINDOW,
            "paced_rate": args.rate,
            "paced_seconds": args.paced_seconds,
            "calls": args.calls,
            "form": calls.form,
            "fields": len(calls.questions),
            "events_per_call": calls.events_per_call,
        },
        "full_load": {},
        "started_at": time.time(),
        "load_average": {"before": os.getloadavg()},
    }
    wanted = {"collector"} if args.profile else set(args.only)
    if args.profile and args.profile_store == "postgres":
        wanted = {"postgres"}
    pg_problem = postgres.unavailable() if wanted & set(PG_PARTS) else None
    if pg_problem is not None:
        _say(f"PostgreSQL passes skipped: {pg_problem}")
        results["postgres"] = {"skipped": pg_problem}
        wanted -= set(PG_PARTS)
    caps = [RATE_CAPS[k] for k in ("collector", "seed", "floor", *PG_PARTS) if k in wanted]
    lanes = scenarios.pool(max(caps), args.seconds) if caps else []
    warm = scenarios.warm_up_pool()
    if lanes:
        _say(f"{sum(map(len, lanes)):,} events generated")

    def budget(kind: str) -> list[list[Any]]:
        return scenarios.prefix(lanes, int(RATE_CAPS[kind] * args.seconds))

    if args.profile:
        out = report.RESULTS / "profile.collapsed"
        _say(f"collector at full load on {args.profile_store} under py-spy -> {out}")
        if args.profile_store == "postgres":
            if pg_problem is not None:
                raise SystemExit(f"bench: {pg_problem}")
            load = scenarios.postgres_full_load(
                budget("postgres"), warm, key, public_key, args.seconds, args.keep, profile=out
            )
        else:
            load = scenarios.collector_full_load(
                budget("collector"), warm, key, public_key, args.seconds, args.keep, profile=out
            )
        spots = profile.hot_spots(out)
        print(
            f"collector at full load: {load['events_per_s']:,.0f} events/s under py-spy "
            f"(ack p99 {load['ack_ms']['99']:.1f} ms)\n"
        )
        print(profile.render(spots))
        report.save({"load": load, "hot_spots": spots}, "profile.json")
        return 0

    full = results["full_load"]
    if "collector" in wanted:
        _say("collector at full load (wrk)")
        full["collector"] = scenarios.collector_full_load(
            budget("collector"), warm, key, public_key, args.seconds, args.keep
        )
    pg = results.setdefault("postgres", {})
    for kind, instances in PG_PARTS.items():
        if kind in wanted:
            where = "one instance" if instances == 1 else f"{instances} instances, round-robin"
            _say(f"collector on PostgreSQL at full load ({where}, wrk)")
            pg["one" if instances == 1 else "pair"] = scenarios.postgres_full_load(
                budget(kind), warm, key, public_key, args.seconds, args.keep, instances
            )
    for kind in ("seed", "floor"):
        if kind in wanted:
            _say(f"{kind} at full load (wrk)")
            full[kind] = scenarios.baseline_full_load(
                kind, budget(kind), warm, key, public_key, args.seconds, args.keep
            )
    if "collector" in full:
        rate = full["collector"]["events_per_s"]
        results["ratios"] = {
            f"collector_vs_{k}": rate / full[k]["events_per_s"]
            for k in ("seed", "floor")
            if k in full and full[k]["events_per_s"]
        }
    pg["ratios"] = report.postgres_ratios(results)
    if "paced" in wanted:
        _say(f"collector at {args.rate:.0f} events/s (Python sender)")
        results["paced"] = scenarios.paced(
            key, public_key, args.rate, args.paced_seconds, args.keep
        )
    if "concurrent" in wanted:
        _say(f"collector with {args.calls:,} calls open at once")
        results["concurrent"] = scenarios.concurrent_calls(key, public_key, args.calls, args.keep)
    results["took_seconds"] = time.time() - results["started_at"]
    results["load_average"]["after"] = os.getloadavg()
    print(report.render(results))
    path = report.save(results)
    print(f"\n(results: {path}; took {results['took_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
