"""Hot spots from py-spy's collapsed stacks (`py-spy record --format raw --function --threads`).

Each line of the file is `frame;frame;...;leaf count`, a frame `function (file:line)`; with
`--threads` the first frame names the thread. Idle samples are not recorded (and samples of
threads blocked in a lock or queue wait are left out), so shares are of the samples in
which some thread was busy. "self" is the share in which a function is
the innermost Python frame (time in C code it called counts as its own), "total" the share
in which it is anywhere on the stack.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

_SITE = re.compile(r"^.*/(site-packages|lib/python3\.\d+)/")
_ROOT = str(Path(__file__).resolve().parent.parent) + "/"
# threads blocked in these are waiting, whatever py-spy's idle heuristic says
_WAITS = (
    "Condition.wait (",
    "Event.wait (",
    "_worker (concurrent/futures/thread.py",
    "Thread.join (",
)


def _short(frame: str) -> str:
    """`verify (/…/site-packages/telnyx/lib/x.py:12)` -> `verify (telnyx/lib/x.py:12)`."""
    name, _, where = frame.partition(" (")
    where = _SITE.sub("", where.rstrip(")")).replace(_ROOT, "")
    return f"{name} ({where})"


def hot_spots(path: Path, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    samples = waits = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        parts = stack.split(";")
        thread = "?"
        if parts and parts[0].startswith("thread ("):
            thread = parts.pop(0)
        frames = [_short(f) for f in parts if " (" in f]
        if not frames:
            continue
        if frames[-1].startswith(_WAITS):
            waits += n
            continue
        samples += n
        threads[_thread_name(thread, frames)] += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n

    def pct(n: int) -> float:
        return round(100 * n / samples, 1) if samples else 0.0

    ours = [(f, n) for f, n in total.most_common() if "(collector/" in f and "cli.py" not in f]
    return {
        "samples": samples,
        "waits_left_out": waits,
        "threads": [(t, pct(n)) for t, n in threads.most_common()],
        "self": [(f, pct(n)) for f, n in own.most_common(top)],
        "total_collector": [(f, pct(n)) for f, n in ours[: top + 10]],
    }


def _thread_name(thread: str, frames: list[str]) -> str:
    """A readable thread label: the event loop, the SQLite writer, or a worker."""
    text = ";".join(frames)
    if "_Writer.run" in text:
        return "sqlite writer thread"
    if "concurrent/futures/thread.py" in text:
        return "asyncio.to_thread workers"
    if "run_forever" in text or "run_until_complete" in text or "Handle._run" in text:
        return "event loop (main thread)"
    return f"other {thread}"


def render(spots: dict[str, Any]) -> str:
    lines = [
        f"py-spy: {spots['samples']:,} busy samples "
        f"({spots['waits_left_out']:,} more in thread waits left out)",
        "  by thread: " + ", ".join(f"{t} {p}%" for t, p in spots["threads"]),
        "",
        "  self %   innermost Python function (C code it calls included)",
    ]
    lines += [f"  {p:6.1f}   {f}" for f, p in spots["self"]]
    lines += ["", "  total %  collector function, inclusive"]
    lines += [f"  {p:6.1f}   {f}" for f, p in spots["total_collector"]]
    return "\n".join(lines)
