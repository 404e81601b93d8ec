"""What every benchmark call says: the form it is routed to, its questions, its answers.

By default that is bench/forms/bench_contact.json with answers that differ per call.
`use_form(path)` swaps in any form whose fields have valid examples (`--form`): the form
and the files its `$ref`s reach are copied into a folder of their own, which becomes the
server's forms_dir, so other forms beside it cannot change the run.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

FORM = "bench_contact"
FORMS_DIR = Path(__file__).resolve().parent / "forms"
PLANS = ("basic", "standard", "premium")
QUESTIONS = {
    "name": "What is your full name?",
    "email": "What's the best email address to reach you?",
    "visit_date": "On which date would you like to come?",
    "plan": "Which plan would you like: basic, standard or premium?",
    "party_size": "How many people are coming?",
}


def _answers(i: int) -> dict[str, Any]:
    return {
        "name": f"Caller {i:05d} Rivera",
        "email": f"caller{i:05d}@example.com",
        "visit_date": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "plan": PLANS[i % len(PLANS)],
        "party_size": 1 + i % 10,
    }


@dataclass(frozen=True, slots=True)
class Script:
    """The form calls are routed to, what the assistant asks, and what the caller says."""

    form: str  # the form's id (its file name)
    forms_dir: Path  # the server's forms_dir
    questions: dict[str, str]  # field -> what the assistant asks, in the form's order
    fixed: dict[str, Any] | None = None  # the same answers for every call; None: _answers(i)

    @property
    def events_per_call(self) -> int:
        return 5 + 2 * len(self.questions)

    def answers(self, i: int) -> dict[str, Any]:
        return dict(self.fixed) if self.fixed is not None else _answers(i)


_SCRIPT = Script(FORM, FORMS_DIR, QUESTIONS)


def current_script() -> Script:
    """The script calls follow now (bench_contact's, unless use_form() chose another)."""
    return _SCRIPT


def use_form(path: Path) -> Script:
    """Make every call fill the form at `path` with its fields' example answers.

    Every answer must be valid, so each call runs the plain flow the checks expect: one AI
    gather, the closing speech, the hangup (4 commands). Forms that change that flow
    (`x-collector.confirm`, `x-collector.after`) or name sinks the benchmark's server does
    not have (`x-collector.sinks`) are refused.
    """
    global _SCRIPT
    from collector.core.forms import FormsInvalid, load_forms

    path = path.resolve()
    if path.suffix != ".json" or not path.is_file():
        raise SystemExit(f"bench: {path} is not a form file (*.json)")
    folder = _isolate(path)
    try:
        form = load_forms(folder)[path.stem]
    except FormsInvalid as exc:
        raise SystemExit(f"bench: {exc}".replace(str(folder), str(path.parent))) from None
    for key, why in (
        ("confirm", "adds a keypad read-back"),
        ("after", "hands the call to an assistant instead of hanging up"),
        ("sinks", "names sinks; the benchmark's server has one JSONL sink"),
    ):
        if getattr(form.options, key) is not None:
            raise SystemExit(f"bench: {path}: /x-collector/{key}: {why}; drop it to benchmark")
    answers = form.example_answers()
    problems = [
        f"{path}: /properties/{name}: "
        + (
            "no example, default or choice to answer with"
            if name not in answers
            else f"its example answer {answers[name]!r} is invalid: {'; '.join(errors)}"
        )
        for name in form.fields
        if name not in answers or (errors := form.validate_field(name, answers[name]))
    ]
    if problems:
        raise SystemExit("bench: every field needs a valid example answer\n" + "\n".join(problems))
    questions = {
        name: f"What is your {spec.title or name.replace('_', ' ')}?"
        for name, spec in form.fields.items()
    }
    _SCRIPT = Script(form.id, folder, questions, answers)
    return _SCRIPT


def _isolate(path: Path) -> Path:
    """A new folder holding the form and every file its `$ref`s reach, at the same
    relative paths (removed when the process exits)."""
    root = path.parent
    folder = Path(tempfile.mkdtemp(prefix="collector-bench-form-"))
    atexit.register(shutil.rmtree, folder, True)
    todo, seen = [path], set()
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        try:
            relative = file.relative_to(root)
        except ValueError:
            raise SystemExit(f"bench: {file}: referenced from {path}, outside its folder") from None
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
        try:
            document = json.loads(file.read_text())
        except (OSError, ValueError):
            continue  # the loader reports it
        todo += [(file.parent / ref).resolve() for ref in _file_refs(document)]
    return folder


def _file_refs(schema: Any) -> list[str]:
    """The file part of every relative `$ref` in a schema document, found with the form
    loader's own walk (which tells keywords from field names and data)."""
    from collector.core.forms.inline import subschemas

    out: list[str] = []
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = urldefrag(ref).url
            if target and ":" not in target:
                out.append(target)
        for _, _, sub in subschemas(schema):
            out += _file_refs(sub)
    return out
