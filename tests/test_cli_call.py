"""`collector call`, run as a user runs it: against a `collector serve` in sandbox mode in
another process, through its admin API. With --wait it prints the final submission and
exits like `simulate` (0 completed, 2 any other outcome, 1 an error)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import running_server
from tests.test_cli import ROOT, run

FORMS = ROOT / "tests" / "fixtures" / "outbound_forms"
TOKEN = "test-admin-token-for-call"
TO = "+13125550190"
VARS = ["--var", "first_name=Maria", "--var", "item=kettle"]


@pytest.fixture(name="server", scope="module")
def _server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A sandbox server with the shipped and the outbound forms; its URL and folder."""
    workdir = tmp_path_factory.mktemp("call")
    shutil.copytree(ROOT / "schemas", workdir / "schemas")
    for form in FORMS.glob("*.json"):
        shutil.copy(form, workdir / "schemas" / form.name)
    env = {
        "COLLECTOR_ADMIN_TOKEN": TOKEN,
        "COLLECTOR_SANDBOX_PACE_SECONDS": "0.02",
        "COLLECTOR_HANGUP_GRACE_SECONDS": "0.5",
    }
    with running_server(workdir, env) as url:
        yield url, workdir


def call(server: tuple[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    url, workdir = server
    return run(
        ["call", *args, "--url", url], workdir, env={"COLLECTOR_ADMIN_TOKEN": TOKEN}, timeout=120
    )


def test_call_wait_prints_the_completed_submission(server: tuple[str, Path]) -> None:
    r = call(server, TO, "--form", "warranty", *VARS, "--wait")
    assert r.returncode == 0, r.stderr
    sub = json.loads(r.stdout)
    assert (sub["status"], sub["outcome"], sub["amd"]) == ("completed", "completed", "human")
    assert sub["call"]["direction"] == "outgoing" and sub["call"]["to"] == TO
    assert sub["transcript"][0]["content"].startswith("Hi Maria, this is Acme")
    assert "outcome completed" in r.stderr


@pytest.mark.parametrize(("callee", "outcome"), [("busy", "busy"), ("voicemail", "voicemail")])
def test_a_call_that_never_reaches_the_form_exits_2_with_its_outcome(
    server: tuple[str, Path], tmp_path: Path, callee: str, outcome: str
) -> None:
    script = tmp_path / "callee.json"
    script.write_text(json.dumps({"callee": callee}))
    r = call(server, TO, "--form", "warranty", *VARS, "--script", str(script), "--wait")
    assert r.returncode == 2, r.stderr
    sub = json.loads(r.stdout)
    assert (sub["status"], sub["outcome"]) == ("abandoned", outcome)


def test_prefill_and_resume_from_the_terminal(server: tuple[str, Path], tmp_path: Path) -> None:
    script = tmp_path / "hangup.json"
    script.write_text(json.dumps({"hangup": "during_gather", "hangup_after": 1}))
    prefill = tmp_path / "prefill.json"
    prefill.write_text(json.dumps({"rating": 5}))
    first = call(
        server, TO, "--form", "warranty", *VARS, "--script", str(script), "--prefill", str(prefill)
    )
    assert first.returncode == 0, first.stderr
    sid = first.stdout.strip()
    url, _ = server
    headers = {"Authorization": f"Bearer {TOKEN}"}
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/api/sessions/{sid}", headers=headers).json()["state"] != "abandoned":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    again = call(server, TO, "--form", "warranty", *VARS, "--resume", sid, "--wait")
    assert again.returncode == 0, again.stderr
    sub = json.loads(again.stdout)
    assert sub["resumed_from"] == sid and sub["fields"]["name"]["resumed_from"]["session_id"] == sid
    assert set(sub["data"]) == {"name", "email", "serial", "rating"}
    assert sub["fields"]["rating"]["source"] == "prefill"  # carried from the first call


def test_refused_calls_and_bad_options_exit_1(server: tuple[str, Path]) -> None:
    missing = call(server, TO, "--form", "warranty", "--var", "first_name=Maria")
    assert missing.returncode == 1 and "422" in missing.stderr and "{item}" in missing.stderr
    bad = call(server, TO, "--form", "warranty", "--var", "first_name")
    assert bad.returncode == 1 and "expected NAME=VALUE" in bad.stderr
    number = call(server, "3125550190", "--form", "plain")
    assert number.returncode == 1 and "E.164" in number.stderr
    url, workdir = server
    wrong = run(
        ["call", TO, "--form", "plain", "--url", url],
        workdir,
        env={"COLLECTOR_ADMIN_TOKEN": "nope"},
    )
    assert wrong.returncode == 1 and "401" in wrong.stderr
