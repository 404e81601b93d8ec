"""The python sink: user classes and async functions as sinks, named by import path.

Also the `collector.sinks` entry-point group, through a real dist-info on sys.path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.config import SinkConfig
from collector.sinks import build_sinks, factory_for
from collector.sinks.jsonl import from_config as jsonl_factory
from collector.sinks.python import FunctionSink, from_config

from . import usersink
from .contract import SinkContract, closed, make_submission, started

TARGET = "sinks.usersink"  # tests/ is on sys.path when pytest runs


class TestPythonClassContract(SinkContract):
    """A python sink built from a user class keeps the contract (the class is idempotent)."""

    def make_sink(self, env: Path) -> Any:
        return from_config(
            name="mine",
            options={"target": f"{TARGET}:FileSink", "directory": str(env / "out")},
            base_dir=env,
        )

    async def read_back(self, env: Path) -> list[dict[str, Any]]:
        return [orjson.loads(p.read_bytes()) for p in sorted((env / "out").glob("*.json"))]


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    usersink.RECEIVED.clear()
    yield usersink.RECEIVED
    usersink.RECEIVED.clear()


@pytest.mark.anyio
async def test_class_target_gets_the_other_options_and_its_hooks_run(tmp_path: Path) -> None:
    """A class target is built with the remaining options as kwargs; start/close are its own."""
    sinks, problems = build_sinks(
        [
            SinkConfig(
                type="python",
                name="mine",
                target=f"{TARGET}:FileSink",
                directory=str(tmp_path),
                prefix="p-",
            )
        ],
        tmp_path,
    )
    assert problems == []
    configured = sinks["mine"]
    user = configured.sink
    assert isinstance(user, usersink.FileSink)
    assert (user.directory, user.prefix) == (tmp_path, "p-")
    await configured.start()
    submission = make_submission("abc")
    await user.deliver(submission)
    await configured.close()
    assert user.started and user.closed
    assert orjson.loads((tmp_path / "p-abc.json").read_bytes()) == submission


@pytest.mark.anyio
async def test_async_function_target_is_wrapped(tmp_path: Path, received: list[Any]) -> None:
    """An async function target becomes a sink whose deliver awaits it with the submission."""
    sink = from_config(name="f", options={"target": f"{TARGET}:record"}, base_dir=tmp_path)
    assert isinstance(sink, FunctionSink)
    submission = make_submission()
    await started(sink)
    await sink.deliver(submission)
    await sink.deliver(submission)
    await closed(sink)
    assert received == [submission]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "missing required option 'target'"),
        ({"target": 5}, "option 'target' must look like 'package.module:attr', got 5"),
        ({"target": "sinks.usersink"}, "option 'target' must look like 'package.module:attr'"),
        ({"target": ":record"}, "option 'target' must look like"),
        ({"target": "sinks.usersink:"}, "option 'target' must look like"),
        ({"target": "no_such_module_xyz:f"}, "could not import module 'no_such_module_xyz'"),
        ({"target": "sinks.no_such_module:f"}, "could not import module 'sinks.no_such_module'"),
        ({"target": f"{TARGET}:missing"}, f"module '{TARGET}' has no attribute 'missing'"),
        ({"target": f"{TARGET}:FileSink.nope"}, f"{TARGET}:FileSink has no attribute 'nope'"),
        ({"target": f"{TARGET}:NOT_CALLABLE"}, r"is not callable \(it is of type int\)"),
        ({"target": f"{TARGET}:sync_function"}, "is not an async function"),
        ({"target": f"{TARGET}:SyncDeliver"}, "a class without an 'async def deliver"),
        ({"target": f"{TARGET}:NoDeliver"}, "a class without an 'async def deliver"),
        ({"target": f"{TARGET}:FileSink"}, "could not create .*FileSink with no options"),
        (
            {"target": f"{TARGET}:FileSink", "directory": "d", "colour": 1},
            "could not create .*FileSink with colour, directory: .*colour",
        ),
        ({"target": f"{TARGET}:record", "colour": 1}, "unknown option.*colour.*takes no options"),
    ],
)
def test_bad_targets_are_refused(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    """Unreachable modules, missing, non-callable or non-async attributes are clear ValueErrors."""
    with pytest.raises(ValueError, match=message):
        from_config(name="mine", options=options, base_dir=tmp_path)


def test_module_failing_at_import_is_a_value_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user module that raises while importing is reported as one ValueError, not a crash."""
    name = f"broken_sink_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import no_such_dependency_xyz\n", encoding="utf-8")
    (tmp_path / f"{name}_boom.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=f"importing module '{name}' failed: ModuleNotFound"):
        from_config(name="mine", options={"target": f"{name}:f"}, base_dir=tmp_path)
    with pytest.raises(ValueError, match=f"importing module '{name}_boom' failed: RuntimeError"):
        from_config(name="mine", options={"target": f"{name}_boom:f"}, base_dir=tmp_path)


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (a dist-info on sys.path) exposing sink types."""
    site = tmp_path / "site"
    info = site / "collector_fancy_sinks-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: collector-fancy-sinks\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[collector.sinks]\n"
        f"fancy = {TARGET}:factory\n"
        f"broken = {TARGET}:no_such_factory\n"
        f"jsonl = {TARGET}:factory\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.mark.anyio
async def test_entry_point_type_is_found_and_built(plugin_dist: Path, tmp_path: Path) -> None:
    """A type named in an installed package's `collector.sinks` entry points builds and delivers."""
    assert factory_for("fancy") is usersink.factory
    sinks, problems = build_sinks(
        [SinkConfig(type="fancy", name="crm", directory="crm-out")], tmp_path
    )
    assert problems == []
    configured = sinks["crm"]
    await configured.start()
    await configured.sink.deliver(make_submission("s1"))
    await configured.close()
    assert (tmp_path / "crm-out" / "crm-s1.json").exists()


def test_entry_points_do_not_shadow_builtins_and_broken_ones_are_reported(
    plugin_dist: Path, tmp_path: Path
) -> None:
    """A built-in type wins over a same-named entry point; one that fails to load is one line."""
    assert factory_for("jsonl") is jsonl_factory
    assert factory_for("no_such_type_anywhere") is None
    sinks, problems = build_sinks([SinkConfig(type="broken", name="b")], tmp_path)
    assert sinks == {}
    assert len(problems) == 1 and "\n" not in problems[0]
    assert "sink 'b': could not load entry point broken" in problems[0]


def test_a_module_beside_the_config_is_imported_from_the_config_folder(tmp_path: Path) -> None:
    """base_dir (collector.toml's folder) is searched for the target, and only meanwhile."""
    import sys

    name = f"beside_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("async def deliver(submission):\n    pass\n")
    before = list(sys.path)
    sink = from_config(name="mine", options={"target": f"{name}:deliver"}, base_dir=tmp_path)
    assert isinstance(sink, FunctionSink) and sink.fn.__module__ == name
    assert sys.path == before


def test_collector_finds_a_sink_module_beside_collector_toml_from_another_folder(
    tmp_path: Path,
) -> None:
    """`target = "mysink:deliver"` with mysink.py next to collector.toml, no PYTHONPATH."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from tests.harness import bare_env

    root = Path(__file__).resolve().parents[2]
    project = tmp_path / "project"
    shutil.copytree(root / "schemas", project / "schemas")
    (project / "collector.toml").write_text(
        '[[sinks]]\ntype = "python"\nname = "mine"\ntarget = "mysink:deliver"\n'
    )
    (project / "mysink.py").write_text(
        "import json, pathlib\n\n"
        "async def deliver(submission):\n"
        "    out = pathlib.Path(__file__).with_name('delivered.json')\n"
        "    out.write_text(json.dumps(submission))\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in bare_env().items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(root)  # collector itself, as if installed; not the project
    r = subprocess.run(
        [sys.executable, "-m", "collector.cli", "simulate", "intake"]
        + ["--config", os.path.relpath(project / "collector.toml", elsewhere)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    delivered = json.loads((project / "delivered.json").read_text())
    assert delivered["submission_id"] == json.loads(r.stdout)["submission_id"]
