"""`[outbound]`: how calls are dialled; each problem one start-up line naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import load_settings
from collector.errors import ConfigurationError


def _problems(cfg: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(cfg, environ or {})
    return caught.value.problems


def test_no_section_means_no_outbound_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text("")
    assert load_settings(cfg, {}).outbound is None


def test_defaults_and_env_references(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(
        '[outbound]\nconnection_id = "${TELNYX_CONNECTION_ID}"\nfrom_number = "+13125550100"\n'
    )
    out = load_settings(cfg, {"TELNYX_CONNECTION_ID": "2287104733592061441"}).outbound
    assert out is not None
    assert (out.connection_id, out.from_number) == ("2287104733592061441", "+13125550100")
    assert (out.answering_machine_detection, out.ring_timeout_seconds) == ("detect", 30)
    assert (out.machine_detection_seconds, out.voicemail_greeting_seconds) == (5.0, 20.0)
    assert out.ring_grace_seconds == 30.0


def test_the_environment_sets_outbound_keys_with_double_underscore(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text('[outbound]\nconnection_id = "a"\nfrom_number = "+13125550100"\n')
    out = load_settings(
        cfg,
        {
            "COLLECTOR_OUTBOUND__CONNECTION_ID": "b",
            "COLLECTOR_OUTBOUND__RING_TIMEOUT_SECONDS": "45",
            "COLLECTOR_OUTBOUND__ANSWERING_MACHINE_DETECTION": "premium",
        },
    ).outbound
    assert out is not None
    assert (out.connection_id, out.ring_timeout_seconds) == ("b", 45)
    assert out.answering_machine_detection == "premium"


def test_every_problem_is_one_line_naming_its_key(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(
        "[outbound]\n"
        'from_number = "3125550100"\n'
        'answering_machine_detection = "sometimes"\n'
        "ring_timeout_seconds = 2\n"
        "machine_detection_seconds = 0\n"
        "ring_grace_seconds = -1\n"
        "dial_rate = 3\n"
    )
    problems = _problems(cfg)
    src = str(cfg)
    assert f"{src}: /outbound/connection_id: Field required" in problems
    by_key = {p.split(": ")[1]: p for p in problems}
    assert set(by_key) == {
        "/outbound/connection_id",
        "/outbound/from_number",
        "/outbound/answering_machine_detection",
        "/outbound/ring_timeout_seconds",
        "/outbound/machine_detection_seconds",
        "/outbound/ring_grace_seconds",
        "/outbound/dial_rate",
    }
    assert "E.164" in by_key["/outbound/from_number"]
    assert "'detect'" in by_key["/outbound/answering_machine_detection"]
    assert by_key["/outbound/dial_rate"].endswith("unknown key")
    assert all("\n" not in p for p in problems)


def test_an_unset_variable_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(
        '[outbound]\nconnection_id = "${TELNYX_CONNECTION_ID}"\nfrom_number = "+13125550100"\n'
    )
    problems = _problems(cfg)
    assert (
        f"{cfg}: /outbound/connection_id: environment variable TELNYX_CONNECTION_ID is not set"
        in problems
    )
