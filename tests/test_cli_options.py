"""Every CLI option explains itself, and the commands that talk to a running server find it
where `serve` listens."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.cli import build_parser
from tests.harness import bare_env, free_port


def _parsers(
    parser: argparse.ArgumentParser, name: str = "collector"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def _arguments() -> list[tuple[str, argparse.Action]]:
    return [
        (name, action)
        for name, parser in _parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
    ]


def test_every_option_and_argument_of_every_subcommand_has_help() -> None:
    arguments = _arguments()
    assert len(arguments) > 30
    missing = [
        f"{name} {'/'.join(a.option_strings) or a.dest}"
        for name, a in arguments
        if not a.help or a.help == argparse.SUPPRESS or not a.help.strip()
    ]
    assert missing == []
    for name, parser in _parsers(build_parser()):
        assert parser.format_help(), name


def test_durations_state_their_unit_and_ports_what_they_default_to() -> None:
    for name, a in _arguments():
        if a.dest == "timeout":
            assert "seconds" in (a.help or ""), name
        if a.dest == "port":
            assert "$PORT" in (a.help or "") and "8000" in (a.help or ""), name


@pytest.mark.parametrize("variable", ["PORT", "COLLECTOR_PORT"])
def test_sessions_cancel_goes_to_the_port_serve_would_listen_on(
    variable: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there: the error names the URL tried
    for command in (["sessions", "cancel", "abc"], ["call", "+13125550190", "--form", "f"]):
        r = subprocess.run(
            [sys.executable, "-m", "collector.cli", *command],
            cwd=tmp_path,
            env={**bare_env(), variable: str(port), "COLLECTOR_ADMIN_TOKEN": "t"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 1
        assert f"cannot reach the server at http://127.0.0.1:{port}" in r.stderr, command
