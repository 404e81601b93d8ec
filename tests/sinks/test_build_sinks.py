"""build_sinks: every built-in type builds; each problem is one line naming the sink."""

from __future__ import annotations

from pathlib import Path

from collector.config import SinkConfig
from collector.sinks import build_sinks
from collector.sinks.jsonl import JsonlSink
from collector.sinks.postgres import PostgresSink
from collector.sinks.python import FunctionSink
from collector.sinks.sqlite import SqliteSink
from collector.sinks.webhook import WebhookSink

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_every_builtin_type_builds(tmp_path: Path) -> None:
    """jsonl, sqlite, postgres, webhook and python sinks all build from their options."""
    sinks, problems = build_sinks(
        [
            SinkConfig(type="jsonl"),
            SinkConfig(type="sqlite", path="r.db", table="calls", statuses=["completed"]),
            SinkConfig(type="postgres", dsn="postgresql://u@127.0.0.1:1/x"),
            SinkConfig(
                type="webhook",
                url="https://example.com/h",
                secret=SECRET,
                timeout_seconds=2.5,
                headers={"X-Team": "ops"},
            ),
            SinkConfig(type="python", name="mine", target="sinks.usersink:record"),
        ],
        tmp_path,
    )
    assert problems == []
    kinds = {name: type(c.sink) for name, c in sinks.items()}
    assert kinds == {
        "jsonl": JsonlSink,
        "sqlite": SqliteSink,
        "postgres": PostgresSink,
        "webhook": WebhookSink,
        "mine": FunctionSink,
    }
    assert sinks["sqlite"].sink.path == tmp_path / "r.db"
    assert sinks["sqlite"].wants("completed") and not sinks["sqlite"].wants("abandoned")


def test_problems_are_one_line_each_naming_the_sink(tmp_path: Path) -> None:
    """Unknown type, missing option and unknown option: one line each, `sink 'x': ...`."""
    sinks, problems = build_sinks(
        [
            SinkConfig(type="nope", name="x"),
            SinkConfig(type="webhook", name="hook", url="https://example.com/h"),
            SinkConfig(type="sqlite", name="db", tabel="calls"),
            SinkConfig(type="postgres", name="pg", dsn="mysql://u:s3cret@h/db"),
            SinkConfig(type="python", name="mine", target="no_such_module_xyz:f"),
            SinkConfig(type="jsonl", name="good"),
        ],
        tmp_path,
        source="collector.toml",
    )
    assert list(sinks) == ["good"]
    assert all("\n" not in p for p in problems)
    assert problems[0].startswith(
        "collector.toml: /sinks/0/type: sink 'x': unknown sink type 'nope'"
    )
    known = problems[0].split("(known: ")[1]
    assert {"jsonl", "postgres", "python", "sqlite", "webhook"} <= set(
        known.rstrip(")").split(", ")
    )
    assert problems[1:] == [
        "collector.toml: /sinks/1: sink 'hook': missing required option(s): secret",
        "collector.toml: /sinks/2: sink 'db': unknown option(s) for sqlite: tabel",
        "collector.toml: /sinks/3: sink 'pg': option 'dsn' must be a URL like"
        " postgresql://user:password@host:5432/dbname (got mysql://)",
        "collector.toml: /sinks/4: sink 'mine': could not import module 'no_such_module_xyz'",
    ]
