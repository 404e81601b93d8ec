"""The machine, the results table, the targets, and bench/results/latest.json."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

TARGET_RATE = 1500.0
TARGET_SEED_RATIO = 3.0
TARGET_ACK_P99_MS = 50.0
TARGET_COMMAND_P99_MS = 100.0
TARGET_RSS_MB = 300.0
TARGET_PG_RATE = 1000.0  # one instance on PostgreSQL
DISTURBED_PCT = 5.0  # CPU other processes may use on the server's core before we say so


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _n(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _ms(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.1f} ms"


def _ok(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _load_rows(results: dict[str, Any]) -> list[str]:
    names = {
        "collector": "collector (whole pipeline)",
        "seed": "seed (Flask + unwrap, gunicorn -w 1)",
        "floor": "floor (Starlette verify + parse)",
    }
    cols = f"{'events/s':>10}{'ack p50':>11}{'ack p99':>11}{'non-2xx':>9}{'peak RSS':>10}"
    rows = [f"  {'server':<38}{cols}{'CPU':>6}{'others':>8}"]
    for key, label in names.items():
        r = results["full_load"].get(key)
        if r is None:
            continue
        rows.append(
            f"  {label:<38}{_n(r['events_per_s']):>10}{_ms(r['ack_ms']['50']):>11}"
            f"{_ms(r['ack_ms']['99']):>11}{r['non_2xx'] + sum(r['socket_errors'].values()):>9}"
            f"{_n(r['peak_rss_mb']):>7} MB{_n(r['server_cpu_pct']):>5}%"
            f"{_n(r['others_on_core0_pct']):>7}%"
        )
    return rows


def _disturbed(results: dict[str, Any]) -> list[str]:
    """Passes during which other processes used core 0 noticeably."""
    passes = {f"full load {k}": v for k, v in results["full_load"].items()}
    passes.update({k: results[k] for k in ("paced",) if k in results})
    busy = {k: v["others_on_core0_pct"] for k, v in passes.items()}
    busy = {k: v for k, v in busy.items() if v is not None and v > DISTURBED_PCT}
    if not busy:
        return []
    which = ", ".join(f"{k} {v:.0f}%" for k, v in busy.items())
    return [f"  note: other processes used core 0 during: {which}; those numbers are low"]


def _deliveries(r: dict[str, Any]) -> str:
    return (
        f"commands sent {r['commands_sent']:,} for {r['commands_expected']:,} expected "
        f"({', '.join(f'{a} {n:,}' for a, n in r['commands_by_action'].items())}), "
        f"missing {r['commands_missing']}; calls completed {r['calls_completed']:,}; "
        f"submissions delivered {r['submissions_delivered']:,} of {r['submissions_expected']:,} "
        f"(unique {r['submissions_unique']:,}, missing {r['submissions_missing']}, "
        f"duplicated {r['submissions_duplicated']})"
    )


def _store(r: dict[str, Any]) -> str:
    st = r.get("store")
    if not st or not st["commits"]:
        return ""
    slow = st["slowest_bucket_ms"]
    slowest = "over 2.5 s" if slow == math.inf else f"under {slow:,.1f} ms"
    return (
        f"store: {st['commits']:,} group commits, {st['jobs_per_commit']:.1f} jobs each; "
        f"{st['over_50ms']:,} took over 50 ms (slowest {slowest}; an ack waits for its commit)"
    )


def _slow_disk(r: dict[str, Any]) -> str:
    st = r.get("store") or {}
    n = st.get("over_50ms", 0)
    return f" ({n} COMMIT{'s' if n != 1 else ''} over 50 ms in the pass: disk stalls)" if n else ""


def postgres_ratios(results: dict[str, Any]) -> dict[str, float]:
    """The PostgreSQL passes against the SQLite one of the same run, and two instances
    against one."""
    pg = results.get("postgres", {})
    sqlite = results["full_load"].get("collector")
    out: dict[str, float] = {}
    for name in ("one", "pair"):
        if name in pg and sqlite and sqlite["events_per_s"]:
            out[f"{name}_vs_sqlite"] = pg[name]["events_per_s"] / sqlite["events_per_s"]
    if "one" in pg and "pair" in pg and pg["one"]["events_per_s"]:
        out["pair_vs_one"] = pg["pair"]["events_per_s"] / pg["one"]["events_per_s"]
    return out


def _postgres_rows(results: dict[str, Any]) -> list[str]:
    pg = results.get("postgres") or {}
    if "skipped" in pg:
        return ["", f"PostgreSQL: skipped ({pg['skipped']})"]
    if not ({"one", "pair"} & set(pg)):
        return []
    cols = f"{'events/s':>10}{'ack p50':>11}{'ack p99':>11}{'non-2xx':>9}{'peak RSS':>10}"
    rows = [
        "",
        "PostgreSQL: the same load on a fresh database of the machine's server (CPU: the "
        "collectors', on core 0; PG: the server's for that database, on either core)",
        f"  {'server':<38}{cols}{'CPU':>6}{'PG':>6}{'others':>8}",
    ]
    labels = {"one": "collector, 1 instance", "pair": "2 instances (round-robin), core 0"}
    for name, label in labels.items():
        r = pg.get(name)
        if r is None:
            continue
        rows.append(
            f"  {label:<38}{_n(r['events_per_s']):>10}{_ms(r['ack_ms']['50']):>11}"
            f"{_ms(r['ack_ms']['99']):>11}{r['non_2xx'] + sum(r['socket_errors'].values()):>9}"
            f"{_n(r['peak_rss_mb']):>7} MB{_n(r['server_cpu_pct']):>5}%"
            f"{_n(r.get('postgres_cpu_pct')):>5}%{_n(r['others_on_core0_pct']):>7}%"
        )
    ratios = pg.get("ratios") or {}
    if ratios:
        rows.append(
            "  ratios: " + ", ".join(f"{k.replace('_', ' ')} {v:.2f}x" for k, v in ratios.items())
        )
    for name in labels:
        r = pg.get(name)
        if r is None:
            continue
        rows.append(
            f"  {name}: " + _deliveries(r) + f", repeated command ids {r['commands_repeated_ids']}"
        )
        if "requests_by_instance" in r:
            rows.append(
                f"  {name}: requests by instance {r['requests_by_instance']}, submissions "
                f"delivered by instance {r['submissions_by_instance']}"
            )
        st = r.get("store")
        if st and st["commits"]:
            rows.append(
                f"  {name}: store: {st['commits']:,} writes (a step is one), "
                f"{st['over_50ms']:,} took over 50 ms"
            )
    return rows


def _rate_and_ack(
    row: dict[str, Any], rate: float, rate_where: str, ack_where: str, *, slow_disk: bool
) -> list[tuple[str, bool, str]]:
    """A full-load run's two targets: `rate` events/s with every command sent, and the p99
    ack (a miss explained by a slow disk when `slow_disk`)."""
    all_sent = row["commands_missing"] == 0 and row["submissions_missing"] == 0
    p99 = row["ack_ms"]["99"]
    return [
        (
            f">= {rate:,.0f} events/s{rate_where}, every command sent",
            row["events_per_s"] >= rate and all_sent,
            f"{row['events_per_s']:,.0f}/s, {row['commands_missing']} missing",
        ),
        (
            f"p99 ack < {TARGET_ACK_P99_MS:.0f} ms{ack_where}",
            p99 < TARGET_ACK_P99_MS,
            _ms(p99) + (_slow_disk(row) if slow_disk and p99 >= TARGET_ACK_P99_MS else ""),
        ),
    ]


def targets(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    out: list[tuple[str, bool, str]] = []
    load = results["full_load"].get("collector")
    if load is not None:
        out += _rate_and_ack(load, TARGET_RATE, "", " at full load", slow_disk=True)
    one = (results.get("postgres") or {}).get("one")
    if one is not None:
        pg = " on PostgreSQL (1 instance)"
        out += _rate_and_ack(one, TARGET_PG_RATE, pg, pg, slow_disk=False)
    pair = (results.get("postgres") or {}).get("pair")
    if pair is not None:
        once = (
            pair["commands_missing"] == 0
            and pair["commands_repeated_ids"] == 0
            and pair["submissions_missing"] == 0
            and pair["submissions_duplicated"] == 0
        )
        out.append(
            (
                "2 instances on PostgreSQL: every command sent, each submission once",
                once,
                f"{pair['commands_missing']} commands missing, {pair['commands_repeated_ids']}"
                f" repeated ids; {pair['submissions_missing']} submissions missing,"
                f" {pair['submissions_duplicated']} twice",
            )
        )
    ratios = results.get("ratios", {})
    if "collector_vs_seed" in ratios:
        out.append(
            (
                f">= {TARGET_SEED_RATIO:.0f}x the seed, same run",
                ratios["collector_vs_seed"] >= TARGET_SEED_RATIO,
                f"{ratios['collector_vs_seed']:.2f}x",
            )
        )
    paced = results.get("paced")
    if paced is not None:
        p99 = paced["command_ms"]["p99_ms"]
        out.append(
            (
                f"webhook-in to command-out p99 < {TARGET_COMMAND_P99_MS:.0f} ms at "
                f"{paced['target_rate']:.0f} events/s",
                p99 < TARGET_COMMAND_P99_MS and paced["commands_missing"] == 0,
                _ms(p99) + (_slow_disk(paced) if p99 >= TARGET_COMMAND_P99_MS else ""),
            )
        )
    conc = results.get("concurrent")
    if conc is not None:
        lost = conc["calls"] - conc["submissions_unique"] + conc["submissions_missing"]
        out.append(
            (
                f"{conc['calls']:,} concurrent calls: RSS < {TARGET_RSS_MB:.0f} MB, "
                "no lost submission",
                conc["peak_rss_mb"] < TARGET_RSS_MB
                and lost == 0
                and conc["submissions_delivered"] == conc["calls"],
                f"{conc['peak_rss_mb']:.0f} MB, {conc['submissions_delivered']:,} lines, "
                f"{conc['submissions_unique']:,} unique ids",
            )
        )
    return out


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    load = results.get("load_average") or {}
    lines = [
        "",
        f"machine: {m['cpu']}, nproc {m['nproc']}, Python {m['python']}; server on core 0, "
        "load generators and fake Telnyx on core 1",
        *(
            [
                "load average (1, 5, 15 min) before the run "
                + ", ".join(f"{x:.2f}" for x in load["before"])
                + ", after "
                + ", ".join(f"{x:.2f}" for x in load["after"])
            ]
            if load
            else []
        ),
        f"form: {results['settings']['form']} ({results['settings']['fields']} fields, "
        f"{results['settings']['events_per_call']} webhooks and 4 commands a call)",
        "",
        f"Full load: wrk, 16 connections, pre-signed events, each call's events in order "
        f"(up to {results['settings']['seconds']:.0f} s each; CPU: the server's, "
        "others: other processes on core 0)",
        *_load_rows(results),
    ]
    ratios = results.get("ratios", {})
    if ratios:
        lines.append(
            "  ratios: " + ", ".join(f"{k.replace('_', ' ')} {v:.2f}x" for k, v in ratios.items())
        )
    load = results["full_load"].get("collector")
    if load is not None:
        lines.append("  collector: " + _deliveries(load))
        if _store(load):
            lines.append("  collector " + _store(load))
    lines += _postgres_rows(results)
    paced = results.get("paced")
    if paced is not None:
        c = paced["command_ms"]
        lines += [
            "",
            f"Rate-limited: {paced['target_rate']:.0f} events/s from the Python sender "
            f"(achieved {paced['events_per_s']:,.0f}/s, {paced['events']:,} events, "
            f"server CPU {paced['server_cpu_pct']:.0f}%)",
            f"  ack p50 {_ms(paced['ack_ms']['p50_ms'])}, p99 {_ms(paced['ack_ms']['p99_ms'])}; "
            f"webhook-in to command-out p50 {_ms(c['p50_ms'])}, p99 {_ms(c['p99_ms'])}, "
            f"max {_ms(c['max_ms'])} ({c['samples']:,} commands)",
            "  by command: "
            + ", ".join(
                f"{a} p50 {_ms(v['p50_ms'])} p99 {_ms(v['p99_ms'])}"
                for a, v in c["by_action"].items()
            ),
            "  " + _deliveries(paced),
        ]
        if _store(paced):
            lines.append("  " + _store(paced))
    conc = results.get("concurrent")
    if conc is not None:
        c = conc["command_ms"]
        lines += [
            "",
            f"{conc['calls']:,} concurrent calls (all open mid-gather, then all complete; "
            "Python sender, 16 connections)",
            f"  RSS with every call open {conc['rss_all_open_mb']:.0f} MB, peak RSS "
            f"{conc['peak_rss_mb']:.0f} MB; ack p50 {_ms(conc['ack_ms']['p50_ms'])}, "
            f"p99 {_ms(conc['ack_ms']['p99_ms'])}; webhook-in to command-out p50 "
            f"{_ms(c['p50_ms'])}, p99 {_ms(c['p99_ms'])}",
            "  " + _deliveries(conc),
        ]
    notes = _disturbed(results)
    lines += ["", *notes, *([""] if notes else []), "Targets"]
    for name, passed, value in targets(results):
        lines.append(f"  [{_ok(passed)}] {name}: {value}")
    return "\n".join(lines)


def _plain(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, float) and math.isinf(x):
        return "+Inf"  # as Prometheus writes it; JSON has no infinity
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def save(results: dict[str, Any], name: str = "latest.json") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(_plain(results), indent=2) + "\n")
    return path
