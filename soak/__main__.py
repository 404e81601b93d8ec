"""`python -m soak`: the soak run (steady load, RSS sampled), then the fault run.

    python -m soak                      # both; the soak lasts $SOAK_MINUTES (default 30)
    python -m soak --only faults        # the fault run alone (10 kill -9s, every fault)
    python -m soak --only soak --minutes 5 --rate 200
    python -m soak --only faults --short   # the CI test's short fault run

Exits 0 when every check held, 1 otherwise. See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import uvloop

from soak import faults, steady
from soak.checks import rows, table


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    ap = argparse.ArgumentParser(prog="python -m soak", description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["soak", "faults"])
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30")))
    ap.add_argument("--warmup-minutes", type=float, default=None)
    ap.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", "200")))
    ap.add_argument("--kills", type=int, default=None, help="kill -9s in the fault run (10)")
    ap.add_argument("--short", action="store_true", help="the short fault run (as in CI)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    args = ap.parse_args(argv)

    ok = True
    tmp = tempfile.mkdtemp(prefix="soak-")
    print(f"working folder: {tmp}")
    try:
        if args.only in (None, "soak"):
            print(f"soak: {args.rate:g} events/s for {args.minutes:g} min")
            res = uvloop.run(
                steady.run(Path(tmp) / "soak", args.minutes, args.rate, args.warmup_minutes)
            )
            print(table("soak run", steady.rows(res) + rows(res.tally)))
            for problem in res.problems():
                print(f"FAILED: {problem}")
            ok = ok and not res.problems()
        if args.only in (None, "faults"):
            plan = faults.Plan.short() if args.short else faults.Plan()
            if args.kills is not None:
                plan = faults.Plan(**{**plan.__dict__, "kills": args.kills})
            print(f"fault run: {plan.kills} kill -9s, Telnyx {list(plan.telnyx)}, lock, disk, hang")
            fr = uvloop.run(faults.run(Path(tmp) / "faults", plan))
            head = [
                ("run length", f"{fr.seconds:.0f} s"),
                ("full-disk fault", fr.disk),
                ("every delivery arrived", "yes" if fr.drained else "NO (timed out)"),
                ("server kill -9s / starts", f"{fr.kills} / {fr.starts}"),
            ]
            print(table("fault run", head + rows(fr.tally)))
            problems = fr.tally.problems() + ([] if fr.drained else ["not every delivery arrived"])
            for problem in problems:
                print(f"FAILED: {problem}")
            ok = ok and not problems
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
