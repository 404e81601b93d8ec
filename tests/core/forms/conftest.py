"""Helpers for the forms tests: real form files written into tmp_path."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"

Writer = Callable[..., Path]


def minimal(**extra: Any) -> dict[str, Any]:
    """A small valid form, with extra top-level keys merged in."""
    form: dict[str, Any] = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Full name", "examples": ["Jane Doe"]},
        },
        "required": ["name"],
    }
    form.update(extra)
    return form


@pytest.fixture(name="forms")
def _forms(tmp_path: Path) -> Path:
    """An empty forms directory."""
    path = tmp_path / "forms"
    path.mkdir()
    return path


@pytest.fixture(name="write")
def _write(forms: Path) -> Writer:
    """write(name, content): a form (or `defs/x.json`) in the forms directory; str is raw."""

    def write(name: str, content: Any) -> Path:
        path = forms / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(name="schemas_copy")
def _schemas_copy(tmp_path: Path) -> Path:
    """A copy of the shipped example forms, safe to edit."""
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    return target


@pytest.fixture(name="lint")
def _lint(forms: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """lint(): the problem lines of the forms directory, its files shown as `forms/…`."""
    from collector.core.forms import check_forms

    monkeypatch.chdir(forms.parent)

    def lint() -> list[str]:
        _, problems = check_forms(Path("forms"))
        return [str(p) for p in problems]

    return lint
