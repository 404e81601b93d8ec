"""Masking sensitive values in what people see: field values and transcript lines.

A field with `x-collector.sensitive` shows as "•••" wherever its value would appear (the
admin API, the live events, the dashboard, logs); only the sinks get the real values.

The transcript needs more care: speech cannot be matched reliably, and the caller's line
arrives before the AI's partial result says which field it answered. So a caller line is
not judged by what it seems to contain but by which gather it belongs to.

The rule (monotone: a line is decided when it first appears and never changes its mind)

1. A *sensitive gather* is an AI gather that may have asked a sensitive field. Which
   ones they were follows from the session alone: the first gather asks every field, a
   field is asked again in consecutive re-asks while it is wrong and has attempts left,
   and the keypad comes only after every AI attempt. So gathers 1..M are sensitive, with
   M the largest, over the sensitive fields S, of S's AI attempts so far (its attempts,
   capped at its `max_attempts`) plus one while S is wrong and may still be asked (the
   gather asking it now, or one cut short by a cancel or a hang-up). M never decreases
   (attempts only grow); after a read-back correction (which resets attempts) every
   gather counts as sensitive.
2. A caller (`user`) line of a sensitive gather is "••• (sensitive)", from the moment it
   appears and for good: whatever it says (digits, a name, a date in words), whether or
   not a partial result ever attributed it, and after the call (cancel, hang-up,
   incomplete) too.
3. A keypad line ("[keypad] …") is "••• (sensitive)" whenever the form has a sensitive
   field with a keypad fallback (the digits may be that field's).
4. Any other caller line is replaced as a whole when it holds a sensitive value heard so
   far in any of its forms: verbatim (case-insensitive, whole words), as read back
   (wording.spoken), digits spaced, grouped or said as words ("four three two one"),
   dates in words or figures ("March fourth nineteen eighty", "4th of March 1980",
   "03/04/1980", "the fourth of March"); and any run of 4 or more digits that is part of
   a sensitive value's digits.
5. Assistant and system lines keep their text with every such form replaced by "•••";
   in a sensitive gather, digit groups and dates (in words or figures) are replaced too,
   since the AI may read an answer back before it reports it.

So a line of a non-sensitive gather that is shown stays shown with the same text, and a
masked line stays masked, with two exceptions that both err towards masking: a line of a
gather that asked no sensitive field is masked later if a sensitive value first heard
later turns out to be in it, and, when a read-back correction starts a new gather,
earlier re-ask lines are masked from then on.

Cost. The patterns of a session are compiled once per (session id, fingerprint of its
sensitive values) and kept in a cache bounded by bytes (`MASKER_CACHE_BYTES`); matching
is one pass of a bounded pattern over the text. At most `MAX_LEAVES` scalar leaves of at
most `MAX_LEAF_CHARS` characters go into a pattern: a session whose sensitive values are
larger than that cannot be matched reliably, so every line of it is masked whole (and
free text, such as notes, is masked whole too).

When a session's form is missing (removed since the call), every field is treated as
sensitive, every gather as a sensitive gather: we cannot tell which ones were.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from collector.bounded import ByteLru
from collector.core.session.model import Session
from collector.core.session.wording import spoken

if TYPE_CHECKING:
    from collector.core.forms import Form

__all__ = [
    "MASK",
    "MASKER_CACHE_BYTES",
    "MASKER_CACHE_ITEMS",
    "MAX_LEAF_CHARS",
    "MAX_LEAVES",
    "SENSITIVE_LINE",
    "Masker",
    "cache_bytes",
    "memory",
    "stats",
]

MASK = "•••"
SENSITIVE_LINE = "••• (sensitive)"
KEYPAD_PREFIX = "[keypad]"
ALL_ATTEMPTS = sys.maxsize

MAX_LEAVES = 64  # scalar leaves of a session's sensitive values that go into its pattern
MAX_LEAF_CHARS = 256  # a longer leaf cannot be matched: every line of the session is masked
MAX_DIGITS = 24  # digit-word patterns are built for values with at most this many digits
MASKER_CACHE_BYTES = 8 * 1024 * 1024  # compiled patterns kept (estimated pattern bytes)
MASKER_CACHE_ITEMS = 4_096

_MIN_FORM_LENGTH = 2  # shorter strings would blank out ordinary words
_DIGIT_GROUP = re.compile(r"\d(?:[ .\-]?\d){3,}")  # 4+ digits, single separators allowed
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")

_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINAL_ONES = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_DIGIT_WORDS = {
    "0": "0|zero|oh|o",
    **{str(i): f"{i}|{_ONES[i]}" for i in range(1, 10)},
}
_SEP = r"[\s,.\-/]+"
_W = r"[\s\-]+"  # between the words of one number


class _Stats:
    """How often patterns were compiled (tests assert on it, never on time)."""

    compilations = 0


stats = _Stats()
_CACHE: ByteLru[tuple[Any, ...], _Compiled] = ByteLru(MASKER_CACHE_BYTES, MASKER_CACHE_ITEMS)


def cache_bytes() -> int:
    """Bytes held by the compiled-pattern cache."""
    return _CACHE.bytes


def memory() -> dict[str, int]:
    """Bytes held now, for /metrics."""
    return {"masker_patterns": _CACHE.bytes}


# -- number and date words ------------------------------------------------------------------


def _number_words(n: int) -> str:
    """0..99 in words, as a regex: "twenty[ -]one"."""
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] if ones == 0 else f"{_TENS[tens]}{_W}{_ONES[ones]}"


def _ordinal_words(n: int) -> str:
    """1..31 as an ordinal in words, as a regex: "twenty[ -]first"."""
    if n < 20:
        word = _ONES[n]
        return _ORDINAL_ONES.get(word, word + "th")
    tens, ones = divmod(n, 10)
    if ones == 0:
        return _TENS[tens][:-1] + "ieth"
    last = _ONES[ones]
    return f"{_TENS[tens]}{_W}{_ORDINAL_ONES.get(last, last + 'th')}"


def _year_words(y: int) -> list[str]:
    """A year in words, as regexes: "nineteen eighty", "two thousand (and )?five"."""
    out: list[str] = []
    hi, lo = divmod(y, 100)
    if 10 <= hi <= 99:
        head = _number_words(hi)
        if lo == 0:
            out.append(f"{head}{_W}hundred")
        elif lo < 10:
            out.append(f"{head}{_W}(?:oh|o|zero){_W}{_ONES[lo]}")
        else:
            out.append(f"{head}{_W}{_number_words(lo)}")
    if 2000 <= y <= 2099:
        rest = y - 2000
        tail = "" if rest == 0 else f"{_W}(?:and{_W})?{_number_words(rest)}"
        out.append(f"two{_W}thousand{tail}")
    return out


def _date_regex(d: date) -> str:
    """Every way a transcript holds this date: in words, in figures, with or without year."""
    month = _MONTHS[d.month - 1]
    mon = f"(?:{month}|{month[:3]}\\.?)"
    days = [f"{d.day:02d}", f"{d.day}(?:st|nd|rd|th)?", _ordinal_words(d.day), _number_words(d.day)]
    day = f"(?:the{_W})?(?:{'|'.join(days)})"
    years = [str(d.year), f"'?{d.year % 100:02d}", *_year_words(d.year)]
    year = f"(?:{'|'.join(years)})"
    of = f"(?:of{_W})?"
    m, dd = d.month, d.day
    yy = f"(?:{d.year}|{d.year % 100:02d})"
    numeric = [
        f"0?{m}[/.\\-]0?{dd}[/.\\-]{yy}",
        f"0?{dd}[/.\\-]0?{m}[/.\\-]{yy}",
        f"{d.year}[/.\\-]0?{m}[/.\\-]0?{dd}",
    ]
    words = [
        f"{mon}{_SEP}{day}(?:{_SEP}{of}{year})?",
        f"{day}{_SEP}{of}{mon}(?:{_SEP}{year})?",
    ]
    return "(?<![\\w])(?:" + "|".join(numeric + words) + ")(?![\\w])"


def _digits_regex(digits: str) -> str:
    """The digits of a value, spaced, grouped or said as words ("four three two one")."""
    parts = [f"(?:{_DIGIT_WORDS[ch]})" for ch in digits]
    return "(?<![\\w])" + "[\\s,.\\-]*".join(parts) + "(?![\\w])"


def _as_date(leaf: Any, schema: Mapping[str, Any]) -> date | None:
    if not isinstance(leaf, str):
        return None
    text = leaf.strip()
    if schema.get("format") == "date-time":
        text = text[:10]
    found = _ISO_DATE.fullmatch(text)
    if found is None:
        return None
    try:
        return date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
    except ValueError:
        return None


def _literal(form: str) -> str:
    """A verbatim form as a regex: any whitespace between its words, whole words only."""
    body = r"\s+".join(re.escape(w) for w in form.split())
    head = r"(?<![\w])" if form[:1].isalnum() else ""
    tail = r"(?![\w])" if form[-1:].isalnum() else ""
    return head + body + tail


# -- shapes (assistant lines of a sensitive gather) -----------------------------------------

_ANY_MONTH = "(?:" + "|".join(f"{m}|{m[:3]}\\.?" for m in _MONTHS) + ")"
_ANY_DAY = (
    f"(?:the{_W})?(?:\\d{{1,2}}(?:st|nd|rd|th)?|"
    + "|".join(sorted({_ordinal_words(i) for i in range(1, 32)}, key=len, reverse=True))
    + "|"
    + "|".join(sorted({_number_words(i) for i in range(1, 32)}, key=len, reverse=True))
    + ")"
)
_ANY_DIGIT_WORD = "(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
_SHAPE = re.compile(
    "(?<![\\w])(?:"
    + "|".join(
        [
            f"{_ANY_MONTH}{_SEP}{_ANY_DAY}(?:{_SEP}(?:of{_W})?\\d{{2,4}})?",
            f"{_ANY_DAY}{_SEP}(?:of{_W})?{_ANY_MONTH}(?:{_SEP}\\d{{2,4}})?",
            f"(?:nineteen|twenty|two{_W}thousand)(?:{_W}(?:and{_W})?(?:oh|"
            + "|".join(_TENS[2:])
            + "|"
            + "|".join(reversed(_ONES[1:]))
            + "))+",
            f"{_ANY_DIGIT_WORD}(?:[\\s,\\-]+{_ANY_DIGIT_WORD}){{2,}}",
            "\\d(?:[\\s.\\-/]?\\d)+",
        ]
    )
    + ")(?![\\w])",
    re.IGNORECASE,
)


# -- compiled patterns -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    pattern: re.Pattern[str] | None
    digits: tuple[str, ...]
    overflow: bool


_NOTHING = _Compiled(None, (), False)


def _bounded_leaves(value: Any, limit: int) -> tuple[list[Any], bool]:
    """The first `limit` scalar leaves of a value, and whether there were more (or one was
    longer than MAX_LEAF_CHARS). Walks at most limit + 1 leaves, however large the value."""
    out: list[Any] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, Mapping):
            stack.extend(reversed(list(itertools.islice(v.values(), limit + 1))))
        elif isinstance(v, list | tuple):
            stack.extend(reversed(v[: limit + 1]))
        elif v is None or isinstance(v, bool):
            continue
        else:
            if len(out) >= limit:
                return out, True
            if isinstance(v, str) and len(v) > MAX_LEAF_CHARS:
                return out, True
            out.append(v)
    return out, False


def _fingerprint(
    values: Iterable[tuple[str, Any]], schemas: Mapping[str, Mapping[str, Any]]
) -> tuple[tuple[Any, ...], bool]:
    """What the pattern depends on: each (field, format, leaf), bounded; and overflow."""
    items: list[tuple[Any, ...]] = []
    left = MAX_LEAVES
    for name, value in values:
        leaves, over = _bounded_leaves(value, left)
        if over:
            return (), True
        left -= len(leaves)
        schema = schemas.get(name) or {}
        fmt = schema.get("format")
        items.extend((name, fmt, type(leaf).__name__, leaf) for leaf in leaves)
    return tuple(sorted(set(items), key=repr)), False


def _compile(items: tuple[tuple[Any, ...], ...]) -> _Compiled:
    literals: set[str] = set()
    regexes: set[str] = set()
    digits: set[str] = set()
    for _name, fmt, _kind, leaf in items:
        text = str(leaf).strip()
        schema = {"format": fmt} if fmt else {}
        for candidate in (text, spoken(leaf, schema).strip()):
            if len(candidate) >= _MIN_FORM_LENGTH:
                literals.add(candidate.lower())
        only_digits = "".join(ch for ch in text if ch.isdigit())
        if len(only_digits) >= 4:
            digits.add(only_digits)
            if len(only_digits) <= MAX_DIGITS:
                regexes.add(_digits_regex(only_digits))
        day = _as_date(leaf, schema)
        if day is not None:
            regexes.add(_date_regex(day))
    parts = sorted(regexes) + [_literal(f) for f in sorted(literals, key=lambda f: (-len(f), f))]
    pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None
    stats.compilations += 1
    return _Compiled(pattern, tuple(sorted(digits)), False)


def _compiled_for(
    session_id: str | None,
    values: Iterable[tuple[str, Any]],
    schemas: Mapping[str, Mapping[str, Any]],
) -> _Compiled:
    items, overflow = _fingerprint(values, schemas)
    if overflow:
        return _Compiled(None, (), True)
    if not items:
        return _NOTHING
    key = (session_id, items)
    found: _Compiled | None = _CACHE.get(key)
    if found is None:
        found = _compile(items)
        size = 256 + sum(len(str(i[3])) for i in items) + sum(map(len, found.digits))
        if found.pattern is not None:
            size += 2 * len(found.pattern.pattern)
        _CACHE.put(key, found, size)
    return found


def _sensitive_through(session: Session, form: Form) -> int:
    """M of the module docstring: AI gathers 1..M may have asked a sensitive field."""
    if session.corrections:
        return ALL_ATTEMPTS
    through = 1  # the first gather asks every field
    for name in form.sensitive_fields:
        spec = form.fields[name]
        allowed = spec.attempts_allowed(form)
        fs = session.fields.get(name)
        if fs is None:
            continue
        asks = min(fs.attempts, allowed)
        wanted = spec.required or fs.has_value
        if not fs.valid and wanted and fs.attempts < allowed:
            asks += 1  # asked now, or next, or cut short
        through = max(through, asks)
    g = session.gather
    if g is not None and g.kind == "ai" and any(n in form.sensitive_fields for n in g.fields):
        through = max(through, g.attempt)
    return through


@dataclass(frozen=True, slots=True)
class Masker:
    """How to mask one session's values and text."""

    fields: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None  # every form of the known sensitive values
    digits: tuple[str, ...] = ()  # the digits of each value with 4 or more of them
    through: int | None = None  # caller lines of attempts 1..through are masked whole
    keypad: bool = False  # keypad lines are masked whole
    overflow: bool = False  # the values are too large to match: mask every line whole

    @classmethod
    def for_session(cls, session: Session, form: Form | None) -> Masker:
        """The masker of a session: its form's sensitive fields and their known values."""
        if form is not None:
            names = frozenset(form.sensitive_fields)
            schemas: dict[str, Mapping[str, Any]] = {
                n: spec.schema for n, spec in form.fields.items() if n in names
            }
        elif session.form is not None:
            names = frozenset(session.fields) | frozenset(session.partial)
            schemas = {}
        else:
            names = frozenset()
            schemas = {}
        if not names and (form is not None or session.form is None):
            return cls()
        values: list[tuple[str, Any]] = []
        for name in sorted(names):
            state = session.fields.get(name)
            if state is not None and state.has_value:
                values.append((name, state.value))
            if name in session.partial:
                values.append((name, session.partial[name]))
        if form is None:
            through, keypad = ALL_ATTEMPTS, True
        else:
            through = _sensitive_through(session, form)
            keypad = any(form.fields[n].options.dtmf is not None for n in names)
        compiled = _compiled_for(session.id, values, schemas)
        return cls(
            fields=names if names else frozenset({"*"}),
            pattern=compiled.pattern,
            digits=compiled.digits,
            through=through,
            keypad=keypad,
            overflow=compiled.overflow,
        )

    @classmethod
    def build(
        cls,
        fields: Iterable[str],
        values: Iterable[tuple[str, Any]],
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        through: int | None = None,
        keypad: bool = False,
    ) -> Masker:
        """A masker for these sensitive fields, whose values are these (name, value)."""
        compiled = _compiled_for(None, list(values), schemas or {})
        return cls(
            fields=frozenset(fields),
            pattern=compiled.pattern,
            digits=compiled.digits,
            through=through,
            keypad=keypad,
            overflow=compiled.overflow,
        )

    @property
    def active(self) -> bool:
        return bool(self.fields)

    # -- values -------------------------------------------------------------------------

    def value(self, name: str, value: Any) -> Any:
        """A field's value as shown."""
        return MASK if name in self.fields or "*" in self.fields else value

    def values(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A field -> value mapping as shown."""
        return {k: self.value(k, v) for k, v in data.items()}

    # -- text ---------------------------------------------------------------------------

    def _digit_hit(self, group: str) -> bool:
        run = "".join(ch for ch in group if ch.isdigit())
        return any(run in d or d in run for d in self.digits)

    def text(self, text: str) -> str:
        """Free text with every form of a sensitive value (and digit runs of one) as •••."""
        if not self.active or not text:
            return text
        if self.overflow:
            return MASK
        if self.pattern is not None:
            text = self.pattern.sub(MASK, text)
        if self.digits:
            text = _DIGIT_GROUP.sub(
                lambda m: MASK if self._digit_hit(m.group(0)) else m.group(0), text
            )
        return text

    def sensitive_attempt(self, attempt: int) -> bool:
        return self.through is not None and attempt <= self.through

    def line(self, role: str, content: str, attempt: int = 0) -> str:
        """One transcript line as shown (see the module docstring for the rules)."""
        if not self.active or not content:
            return content
        if self.overflow:
            return SENSITIVE_LINE
        if role == "user":
            if self.sensitive_attempt(attempt):
                return SENSITIVE_LINE
            if self.keypad and content.startswith(KEYPAD_PREFIX):
                return SENSITIVE_LINE
            return SENSITIVE_LINE if self.text(content) != content else content
        masked = self.text(content)
        if self.sensitive_attempt(attempt):
            masked = _SHAPE.sub(MASK, masked)
        return masked

    def deep(self, value: Any) -> Any:
        """Mask every string inside a JSON-like value."""
        if not self.active:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value
