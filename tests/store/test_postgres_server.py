"""The whole server on PostgreSQL: `collector simulate` and `collector serve` as a user
runs them, `collector db status|upgrade`, and a restart over the same database that picks
up a call where it was (its pending command sent, its deadline tracked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from collector.adapters.store.postgres_migrations import MIGRATIONS as PG_MIGRATIONS
from collector.cli import build_parser
from collector.config import load_settings
from collector.runtime import build_runtime
from collector.simulator.fake_telnyx import FakeTelnyx
from collector.web.app import create_app
from tests.harness import bare_env, eventually, free_socket, serve, write_config

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
FORMS = ROOT / "tests" / "fixtures" / "forms"
NUMBER = "+13125550001"
SECRET = "s3cret-Pa55word"


def collector(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = bare_env()
    return subprocess.run(
        [sys.executable, "-m", "collector.cli", *args],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


@pytest.mark.anyio
@pytest.mark.slow
async def test_simulate_runs_a_whole_call_on_postgresql_twice(tmp_path: Path, pg_url: str) -> None:
    """`collector simulate` with database_url on PostgreSQL: the schema is made, the call
    completes, its submission reaches the JSONL sink once; a second run on the same
    database (the schema already there) adds one more."""
    (tmp_path / "collector.toml").write_text(f'forms_dir = "{ROOT / "schemas"}"\n')
    first = collector(["simulate", "intake"], tmp_path, COLLECTOR_DATABASE_URL=pg_url)
    assert first.returncode == 0, first.stderr
    submitted = json.loads(first.stdout)
    assert [s["submission_id"] for s in jsonl(tmp_path / "results.jsonl")] == [
        submitted["submission_id"]
    ]
    second = collector(["simulate", "intake"], tmp_path, COLLECTOR_DATABASE_URL=pg_url)
    assert second.returncode == 0, second.stderr
    assert len({s["submission_id"] for s in jsonl(tmp_path / "results.jsonl")}) == 2
    assert await rows(pg_url, "SELECT state, COUNT(*) FROM sessions GROUP BY state") == [
        ("completed", 2)
    ]
    assert await rows(pg_url, "SELECT sink, state FROM deliveries") == [("jsonl", "delivered")] * 2
    assert await rows(pg_url, "SELECT DISTINCT state FROM commands") == [("sent",)]
    assert await rows(pg_url, "SELECT version FROM schema_version") == [
        (v,) for v in range(1, len(PG_MIGRATIONS) + 1)
    ]


def test_serve_refuses_an_unreachable_database_in_one_line_without_the_password(
    tmp_path: Path,
) -> None:
    (tmp_path / "collector.toml").write_text(f'forms_dir = "{ROOT / "schemas"}"\n')
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/collector"
    r = collector(["serve", "--port", "0"], tmp_path, COLLECTOR_DATABASE_URL=url)
    assert r.returncode == 1
    assert SECRET not in r.stdout + r.stderr and "Traceback" not in r.stderr
    [line] = [x for x in r.stderr.splitlines() if "/database_url:" in x]
    assert line.startswith("collector.toml: /database_url: cannot connect to PostgreSQL at")
    assert "127.0.0.1:1 (postgresql://postgres:***@127.0.0.1:1/collector)" in line
    malformed = collector(
        ["serve", "--port", "0"],
        tmp_path,
        COLLECTOR_DATABASE_URL=f"postgresql://postgres:{SECRET}@127.0.0.1:port/db",
    )
    assert malformed.returncode == 1 and SECRET not in malformed.stderr
    assert "/database_url: a PostgreSQL URL whose port is not a number" in malformed.stderr


def cli(args: list[str], capsys: pytest.CaptureFixture[str], **env: str) -> tuple[int, str, str]:
    """Run the `collector` command in this process: (exit code, stdout, stderr)."""
    parsed = build_parser().parse_args(args)
    code = parsed.run(parsed, env)
    out, err = capsys.readouterr()
    return code, out, err


def test_db_status_and_upgrade_on_postgresql_and_sqlite(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(tmp_path / "none.toml")
    (tmp_path / "none.toml").write_text("")
    for url, known in ((pg_url, len(PG_MIGRATIONS)), (f"sqlite:///{tmp_path}/c.db", 3)):
        env = {"COLLECTOR_DATABASE_URL": url}
        code, out, _ = cli(["db", "status", "--config", config], capsys, **env)
        assert code == 1 and f"schema version 0, this collector's {known} (pending" in out
        code, out, err = cli(["db", "upgrade", "--config", config], capsys, **env)
        assert code == 0 and f"schema version upgraded from 0 to {known}" in out, err
        code, out, _ = cli(["db", "upgrade", "--config", config], capsys, **env)
        assert code == 0 and f"schema version at {known}, up to date" in out
        code, out, _ = cli(["db", "status", "--config", config], capsys, **env)
        assert code == 0 and "(up to date)" in out
    down = {"COLLECTOR_DATABASE_URL": f"postgres://postgres:{SECRET}@127.0.0.1:1/db"}
    code, out, err = cli(["db", "status", "--config", config], capsys, **down)
    assert code == 1 and SECRET not in out + err
    assert err.startswith(f"{config}: /database_url: cannot connect to PostgreSQL at 127.0.0.1:1")


@pytest.mark.anyio
async def test_a_restart_on_the_same_database_sends_the_pending_command_and_finishes_the_call(
    tmp_path: Path, pg_url: str
) -> None:
    """Server A takes a call whose answer Telnyx keeps refusing (503) and stops with the
    answer pending; server B, on the same database, restores the command and the call's
    deadline, sends the answer, and the call goes on to its one submission."""
    holder: dict[str, str] = {}
    fake = FakeTelnyx(lambda: holder["url"] + "/webhooks/telnyx", pace=0.0)
    cfg = write_config(
        tmp_path / "collector.toml",
        FORMS,
        f'[routing.numbers]\n"{NUMBER}" = "contact"\n'
        '[[sinks]]\ntype = "jsonl"\npath = "results.jsonl"\n',
    )
    async with serve(fake.asgi_app()) as telnyx_url:
        environ = {
            "TELNYX_API_KEY": "KEY_test",
            "TELNYX_PUBLIC_KEY": fake.public_key_b64,
            "TELNYX_BASE_URL": f"{telnyx_url}/v2",
            "COLLECTOR_DATABASE_URL": pg_url,
        }
        fake.faults.arm(503, action="answer", count=1000)
        first = build_runtime(load_settings(cfg, environ), environ)
        async with serve(create_app(first)) as url:
            holder["url"] = url
            ccid = await fake.place_call(to=NUMBER)

            async def refused() -> bool:
                return bool(fake.faults.spent)

            await eventually(refused)
        assert [(c.action, c.state) for c in await _commands(pg_url, ccid)] == [
            ("answer", "pending")
        ]
        fake.faults.armed.clear()
        with capture_logs() as logs:
            second = build_runtime(load_settings(cfg, environ), environ)
            sock = free_socket()  # its URL known before it starts: the restored answer's
            holder["url"] = f"http://127.0.0.1:{sock.getsockname()[1]}"  # webhooks go there
            async with serve(create_app(second), sock):

                async def submitted() -> list[dict[str, Any]]:
                    return jsonl(tmp_path / "results.jsonl")

                [sub] = await eventually(submitted)
                await fake.idle(settle=0.3)
                assert len(jsonl(tmp_path / "results.jsonl")) == 1
    [started] = [e for e in logs if e["event"] == "started"]
    assert (started["restored_commands"], started["timers"]) == (1, 1)
    assert sub["status"] == "completed" and sub["call"]["call_control_id"] == ccid
    assert [r.action for r in fake.commands(ccid)] == [
        "answer",
        "gather_using_ai",
        "speak",
        "hangup",
    ]
    assert len({r.command_id for r in fake.commands(ccid)}) == 4


async def _commands(url: str, ccid: str) -> list[Any]:
    from collector.adapters.store.postgres import PostgresStore

    store = PostgresStore(url, pool_size=1)
    await store.open()
    try:
        return await store.pending_commands(ccid)
    finally:
        await store.close()
