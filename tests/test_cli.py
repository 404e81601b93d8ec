"""The README's commands, run as a new user runs them: real processes, real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import bare_env, free_port, running_server

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR = [sys.executable, "-m", "collector.cli"]


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        COLLECTOR + args,
        cwd=cwd,
        env={**bare_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(name="workdir")
def _workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return tmp_path


def test_forms_check_passes_on_the_example_forms(workdir: Path) -> None:
    """`collector forms check` is clean on the shipped forms."""
    r = run(["forms", "check"], workdir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "intake" in r.stdout and "claim" in r.stdout and "appointment" in r.stdout


def test_forms_check_lists_every_problem_and_exits_1(workdir: Path) -> None:
    """Broken forms give one `file: /pointer: message` line each and exit 1."""
    (workdir / "schemas" / "broken.json").write_text(
        '{"type": "object", "properties": {}, "required": []}'
    )
    (workdir / "schemas" / "typo.json").write_text(
        '{"type": "object", "x-collector": {"greting": "hi"}, "properties": {"a": {"type": "string"}}, "required": ["a"]}'
    )
    r = run(["forms", "check"], workdir)
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert any(line.startswith("schemas/broken.json: /required: ") for line in lines)
    assert any(
        line.startswith("schemas/typo.json: /x-collector") and "did you mean 'greeting'" in line
        for line in lines
    )
    assert "Traceback" not in r.stdout + r.stderr


def test_forms_show_prints_the_inlined_gather_body(workdir: Path) -> None:
    """`collector forms show intake` prints parameters without $ref and the gather options."""
    r = run(["forms", "show", "intake"], workdir)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert "$ref" not in r.stdout and "x-collector" not in r.stdout and "$defs" not in r.stdout
    assert body["parameters"]["required"]
    assert body["send_partial_results"] is True
    assert "client_state" not in body and "command_id" not in body


def test_simulate_prints_a_completed_submission_and_writes_one_jsonl_line(workdir: Path) -> None:
    """`collector simulate intake` exits 0 with the submission; results.jsonl has one line."""
    r = run(["simulate", "intake"], workdir)
    assert r.returncode == 0, r.stderr
    sub = json.loads(r.stdout)
    assert sub["status"] == "completed" and sub["form"] == "intake"
    lines = (workdir / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["submission_id"] == sub["submission_id"]


def test_simulate_with_a_hangup_exits_2(workdir: Path) -> None:
    """A caller who hangs up mid-gather gives an abandoned submission and exit code 2."""
    answers = workdir / "answers.json"
    answers.write_text(json.dumps({"hangup_after": 1}))
    r = run(["simulate", "intake", "--answers", str(answers)], workdir)
    assert r.returncode == 2, r.stderr
    assert json.loads(r.stdout)["status"] == "abandoned"


def test_simulate_unknown_form_exits_1(workdir: Path) -> None:
    """An unknown form is an error, with the known forms named."""
    r = run(["simulate", "nope"], workdir)
    assert r.returncode == 1
    assert "no form 'nope'" in r.stderr


def test_live_mode_without_public_key_refuses_to_start(workdir: Path) -> None:
    """TELNYX_API_KEY without TELNYX_PUBLIC_KEY: one line naming the variable, exit 1."""
    r = run(["serve", "--port", "0"], workdir, env={"TELNYX_API_KEY": "KEY_test"})
    assert r.returncode == 1
    assert "TELNYX_PUBLIC_KEY" in r.stderr
    assert "Traceback" not in r.stderr


def test_broken_form_and_bad_sink_refuse_start_with_every_problem(workdir: Path) -> None:
    """Start-up lists all problems (forms and sinks), one line each, and exits 1."""
    (workdir / "schemas" / "broken.json").write_text("{not json")
    (workdir / "collector.toml").write_text('[[sinks]]\ntype = "carrier-pigeon"\n')
    r = run(["serve", "--port", "0"], workdir)
    assert r.returncode == 1
    assert "schemas/broken.json: /: " in r.stderr
    assert "sink 'carrier-pigeon': unknown sink type" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_serve_answers_healthz_and_stops_cleanly_on_sigterm(workdir: Path) -> None:
    """`collector serve` serves /healthz; SIGTERM finishes and exits 0."""
    port = free_port()
    proc = subprocess.Popen(
        COLLECTOR + ["serve", "--port", str(port)],
        cwd=workdir,
        env={**bare_env(), "PORT": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.communicate()[1]) from None
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "store": "writable", "mode": "sandbox"}
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        first = err.splitlines()[0]
        assert "sandbox" in first and "TELNYX_API_KEY is not set" in first
        assert "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_clean_clone_has_everything_the_readme_commands_need(tmp_path: Path) -> None:
    """A fresh `git clone` (committed files only) runs `forms check` and `simulate`."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:
        pytest.skip("no commit yet")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=60)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "COLLECTOR_"))}
    env["PYTHONPATH"] = str(clone)
    for args in (["forms", "check"], ["simulate", "appointment"]):
        r = subprocess.run(
            [sys.executable, "-m", "collector.cli", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert r.returncode == 0, (args, r.stderr[-2000:])
    assert (clone / "Makefile").exists() and (clone / ".ci" / "run").exists()
    readme = (clone / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_outbox_lists_retries_and_replays_deliveries(workdir: Path) -> None:
    """`collector outbox` shows a dead delivery; retry requeues it; replay adds a new one."""
    import sqlite3

    r = run(["simulate", "intake"], workdir)
    assert r.returncode == 0, r.stderr
    sid = json.loads(r.stdout)["submission_id"]
    db = sqlite3.connect(workdir / "collector.db")
    db.execute("UPDATE deliveries SET state = 'dead', attempts = 12, last_error = 'HTTP 503'")
    db.commit()
    listed = run(["outbox"], workdir)
    assert listed.returncode == 0
    assert "dead" in listed.stdout and sid in listed.stdout and "HTTP 503" in listed.stdout
    assert run(["outbox", "retry", "--all-dead"], workdir).stdout.strip() == "requeued 1 delivery"
    assert db.execute("SELECT state, attempts FROM deliveries").fetchall() == [("pending", 0)]
    replay = run(["outbox", "replay", sid, "--sink", "jsonl"], workdir)
    assert replay.returncode == 0 and "replay queued" in replay.stdout
    rows = db.execute(
        "SELECT sink, key != submission_id, replay FROM deliveries ORDER BY id"
    ).fetchall()
    assert rows == [("jsonl", 0, 0), ("jsonl", 1, 1)]
    unknown = run(["outbox", "replay", sid, "--sink", "nope"], workdir)
    assert unknown.returncode == 1 and "no sink named 'nope'" in unknown.stderr
    assert run(["outbox", "retry"], workdir).returncode == 1  # neither an id nor --all-dead


def test_outbox_retry_of_no_such_delivery_says_so_and_exits_1(workdir: Path) -> None:
    """`outbox retry ID` names the delivery it could not requeue; it requeues nothing."""
    import sqlite3

    r = run(["simulate", "intake"], workdir)
    assert r.returncode == 0, r.stderr
    db = sqlite3.connect(workdir / "collector.db")
    (delivered,) = db.execute("SELECT id FROM deliveries WHERE state = 'delivered'").fetchone()
    for missing in (42, delivered):
        retry = run(["outbox", "retry", str(missing)], workdir)
        assert retry.returncode == 1
        assert f"no delivery {missing} pending or dead" in retry.stderr
        assert "requeued" not in retry.stdout
    assert db.execute("SELECT state FROM deliveries").fetchall() == [("delivered",)]
    db.execute("UPDATE deliveries SET state = 'dead'")
    db.commit()
    retry = run(["outbox", "retry", str(delivered)], workdir)
    assert (retry.returncode, retry.stdout.strip()) == (0, "requeued 1 delivery")


@pytest.mark.slow
def test_sessions_cancel_ends_a_live_call_through_the_running_server(workdir: Path) -> None:
    """`collector sessions cancel ID` makes a live sandbox call end abandoned."""
    token = "test-admin-token"
    env = {"COLLECTOR_ADMIN_TOKEN": token, "COLLECTOR_SANDBOX_PACE_SECONDS": "0.5"}
    auth = {"Authorization": f"Bearer {token}"}
    with running_server(workdir, env) as url:
        placed = httpx.post(
            f"{url}/api/simulate", json={"form": "intake"}, headers=auth, timeout=10
        )
        assert placed.status_code == 202, placed.text
        sid = placed.json()["session_id"]
        r = run(
            ["sessions", "cancel", sid, "--url", url], workdir, env={"COLLECTOR_ADMIN_TOKEN": token}
        )
        assert r.returncode == 0, r.stderr
        view = httpx.get(f"{url}/api/sessions/{sid}", headers=auth, timeout=10).json()
        assert view["state"] == "abandoned"
        again = run(
            ["sessions", "cancel", sid, "--url", url], workdir, env={"COLLECTOR_ADMIN_TOKEN": token}
        )
        assert again.returncode == 1 and "409" in again.stderr
        wrong = run(
            ["sessions", "cancel", sid, "--url", url],
            workdir,
            env={"COLLECTOR_ADMIN_TOKEN": "nope"},
        )
        assert wrong.returncode == 1 and "401" in wrong.stderr


def test_live_mode_with_a_malformed_public_key_refuses_to_start(workdir: Path) -> None:
    """A TELNYX_PUBLIC_KEY that is not base64 of 32 bytes is refused at start, not per webhook."""
    r = run(
        ["serve", "--port", "0"],
        workdir,
        env={"TELNYX_API_KEY": "KEY_test", "TELNYX_PUBLIC_KEY": "not-a-key"},
    )
    assert r.returncode == 1
    assert "/TELNYX_PUBLIC_KEY: not a public key" in r.stderr


def _readme_scripts() -> list[tuple[str, str, str]]:
    """(form, expected status, script) for each caller script the README shows."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"<!-- caller script: (\S+) (\S+) -->\n```json\n(.*?)```", readme, re.S)
    assert len(found) >= 3, "the README's caller scripts are marked for this test"
    return found


@pytest.mark.parametrize(("form", "status", "script"), _readme_scripts())
def test_every_readme_caller_script_runs_on_its_form(
    workdir: Path, form: str, status: str, script: str
) -> None:
    """Each caller script shown in the README runs as shown, on the form it sits under."""
    answers = workdir / "answers.json"
    answers.write_text(script)
    r = run(["simulate", form, "--answers", str(answers)], workdir)
    assert r.returncode == (0 if status == "completed" else 2), r.stderr
    assert json.loads(r.stdout)["status"] == status


def test_a_script_naming_an_unknown_field_is_an_error_with_a_did_you_mean(
    workdir: Path,
) -> None:
    """A misspelt field in a caller script stops simulate with exit 1, naming it."""
    answers = workdir / "answers.json"
    answers.write_text(json.dumps({"full_nme": "Jane Doe"}))
    r = run(["simulate", "intake", "--answers", str(answers)], workdir)
    assert r.returncode == 1
    assert "'full_nme' (did you mean 'full_name'?)" in r.stderr
    assert not (workdir / "results.jsonl").exists()


def test_forms_show_given_prints_the_follow_up_gather(workdir: Path) -> None:
    """`forms show survey --given` prints the follow-up a low rating leads to, and null
    when the answers lead to nothing more."""
    r = run(
        ["forms", "show", "survey", "--given", '{"rating": 1, "would_recommend": true}'], workdir
    )
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert list(body["parameters"]["properties"]) == ["what_went_wrong", "contact_method"]
    assert body["parameters"]["required"] == ["what_went_wrong", "contact_method"]
    r = run(
        ["forms", "show", "survey", "--given", '{"rating": 5, "would_recommend": true}'], workdir
    )
    assert r.returncode == 0 and json.loads(r.stdout) is None
    r = run(["forms", "show", "survey", "--given", '{"rating": 9}'], workdir)
    assert r.returncode == 1 and "rating: must be at most 5" in r.stderr
