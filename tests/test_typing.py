"""The type check's configuration: pyproject's strict modules get every flag of --strict.

`strict = true` in a mypy override is not per-module (mypy applies it to every module),
so pyproject spells the flags out; this holds them to mypy's own list of strict flags.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy.main import define_options, process_options
from mypy.options import Options

ROOT = Path(__file__).resolve().parent.parent
STRICT = ["collector.core.forms.form", "collector.core.session.decide", "collector.ports"]
STRICT += ["collector.records", "collector.errors"]


@pytest.fixture(name="options", scope="module")
def _options() -> Options:
    _, options = process_options(["--config-file", str(ROOT / "pyproject.toml")])
    return options


def test_the_core_and_the_ports_get_every_strict_flag(options: Options) -> None:
    _, _, strict_flags = define_options()
    for module in STRICT:
        chosen = options.clone_for_module(module)
        lax = [flag for flag, value in strict_flags if getattr(chosen, flag) != value]
        assert lax == [], module


def test_the_shell_is_checked_plainly(options: Options) -> None:
    """Elsewhere: untyped bodies are checked, but annotations are not demanded."""
    shell = options.clone_for_module("collector.web.live")
    assert shell.check_untyped_defs and shell.warn_unused_ignores
    assert not shell.disallow_untyped_defs
