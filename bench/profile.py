"""Hot spots from py-spy's collapsed stacks (`py-spy record --format raw --function`).

Each line of the file is `frame;frame;...;leaf count`, a frame `function (file:line)`.
"self" is the share of samples in which a function is the leaf, "total" the share in which
it is anywhere on the stack (counted once per sample).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_SITE = re.compile(r"^.*/(site-packages|lib/python3\.\d+)/")


def _short(frame: str) -> str:
    """`verify (/…/site-packages/telnyx/lib/x.py:12)` -> `verify (telnyx/lib/x.py:12)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    where = _SITE.sub("", where)
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return f"{name} ({where.replace(root, '')})"


def hot_spots(path: Path, top: int = 15) -> dict[str, object]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    pct = (lambda n: round(100 * n / samples, 1)) if samples else (lambda n: 0.0)
    return {
        "samples": samples,
        "self": [(f, pct(n)) for f, n in own.most_common(top)],
        "total": [(f, pct(n)) for f, n in total.most_common(top + 10)],
    }


def render(spots: dict[str, object]) -> str:
    lines = [f"py-spy: {spots['samples']:,} samples (idle excluded)", "", "  self %   function"]
    lines += [f"  {p:6.1f}   {f}" for f, p in spots["self"]]  # type: ignore[attr-defined]
    lines += ["", "  total %  function (inclusive)"]
    lines += [f"  {p:6.1f}   {f}" for f, p in spots["total"]]  # type: ignore[attr-defined]
    return "\n".join(lines)
