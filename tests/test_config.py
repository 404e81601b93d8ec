"""Configuration: the file, the environment over it, ${VAR}, and every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from collector.config import load_settings
from collector.errors import ConfigurationError
from collector.runtime import build_runtime


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no collector.toml the defaults hold and one jsonl sink writes results.jsonl."""
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.database_url == "sqlite:///collector.db"
    assert s.forms_path == tmp_path / "schemas"
    assert (
        s.hangup_grace_seconds == 5 and s.session_timeout_seconds == 1800 and s.retention_days == 30
    )
    [sink] = s.sink_configs()
    assert sink.type == "jsonl" and sink.options == {"path": "results.jsonl"}


def test_environment_wins_over_the_file_and_nests_with_double_underscore(tmp_path: Path) -> None:
    """COLLECTOR_<KEY> and COLLECTOR_ROUTING__DEFAULT_FORM override collector.toml."""
    cfg = tmp_path / "collector.toml"
    cfg.write_text('hangup_grace_seconds = 3\n[routing]\ndefault_form = "a"\n')
    s = load_settings(
        cfg, {"COLLECTOR_HANGUP_GRACE_SECONDS": "9", "COLLECTOR_ROUTING__DEFAULT_FORM": "b"}
    )
    assert s.hangup_grace_seconds == 9
    assert s.routing.default_form == "b"


def test_env_var_references_are_expanded_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    """${VAR} in a string takes the environment's value; paths resolve beside the file."""
    (tmp_path / "conf").mkdir()
    cfg = tmp_path / "conf" / "collector.toml"
    cfg.write_text('forms_dir = "forms"\n[[sinks]]\ntype = "webhook"\nurl = "${HOOK_URL}"\n')
    s = load_settings(cfg, {"HOOK_URL": "https://example.com/hook"})
    assert s.sinks[0].options["url"] == "https://example.com/hook"
    assert s.forms_path == tmp_path / "conf" / "forms"
    assert s.sqlite_path == str(tmp_path / "conf" / "collector.db")


def test_every_problem_is_reported_one_line_each(tmp_path: Path) -> None:
    """Unknown keys, bad values, a missing ${VAR} and duplicate sink names all come back together."""
    cfg = tmp_path / "collector.toml"
    cfg.write_text(
        'bogus = 1\nhangup_grace_seconds = "soon"\npublic_url = "${NOPE}"\n'
        '[[sinks]]\ntype = "jsonl"\n[[sinks]]\ntype = "jsonl"\n'
    )
    with pytest.raises(ConfigurationError) as info:
        load_settings(cfg, {})
    lines = info.value.problems
    assert any(line.endswith("/bogus: unknown key") for line in lines)
    assert any("/hangup_grace_seconds:" in line for line in lines)
    assert any("NOPE is not set" in line for line in lines)
    assert all(line.startswith(str(cfg) + ": /") for line in lines)


def test_duplicate_sink_names_are_refused(tmp_path: Path) -> None:
    """Two sinks with the same name (here both defaulting to their type) are an error."""
    cfg = tmp_path / "collector.toml"
    cfg.write_text('[[sinks]]\ntype = "jsonl"\n[[sinks]]\ntype = "jsonl"\npath = "b.jsonl"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings(cfg, {})
    assert info.value.problems == [
        f"{cfg}: /sinks/1/name: sink name 'jsonl' is already used by /sinks/0 (give each sink a unique name)"
    ]


def test_bad_toml_is_one_clear_line(tmp_path: Path) -> None:
    """A syntax error names the file."""
    cfg = tmp_path / "collector.toml"
    cfg.write_text("forms_dir = \n")
    with pytest.raises(ConfigurationError) as info:
        load_settings(cfg, {})
    assert info.value.problems[0].startswith(f"{cfg}: /: ")


def test_database_synchronous_is_full_by_default_and_checked(tmp_path: Path) -> None:
    """FULL unless set; only FULL or NORMAL are accepted."""
    assert load_settings(environ={}).database_synchronous == "FULL"
    assert (
        load_settings(environ={"COLLECTOR_DATABASE_SYNCHRONOUS": "NORMAL"}).database_synchronous
        == "NORMAL"
    )
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"COLLECTOR_DATABASE_SYNCHRONOUS": "OFF"})
    assert "/database_synchronous:" in info.value.problems[0]


def test_telnyx_settings_without_an_api_key_are_named_as_ignored(tmp_path: Path) -> None:
    """Sandbox mode says so when TELNYX_PUBLIC_KEY / TELNYX_BASE_URL would go unused."""
    forms = Path(__file__).resolve().parent / "fixtures" / "forms"
    environ = {
        "COLLECTOR_FORMS_DIR": str(forms),
        "COLLECTOR_DATABASE_URL": f"sqlite:///{tmp_path}/c.db",
        "TELNYX_PUBLIC_KEY": "MCowBQYDK2VwAyEA",
    }
    with capture_logs() as logs:
        runtime = build_runtime(load_settings(environ=environ), environ)
    assert runtime.mode == "sandbox"
    warned = [e for e in logs if e["event"] == "telnyx_settings_ignored"]
    assert len(warned) == 1 and warned[0]["ignored"] == ["TELNYX_PUBLIC_KEY"]
    with capture_logs() as logs:
        build_runtime(load_settings(environ={**environ, "TELNYX_PUBLIC_KEY": ""}), {})
    assert not [e for e in logs if e["event"] == "telnyx_settings_ignored"]
