"""A log line that cannot be written is dropped and counted, never raised into the caller.

Each fault is real, in a child process that logs through `collector.logs`: its stderr is a
file on a full tmpfs (ENOSPC), a pipe whose reader has gone (EPIPE), a descriptor closed
under it (EBADF), or closed before it started. The tmpfs test needs root (CI runs as
root); elsewhere it skips, and under CI=true a skip is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector import logs
from collector.adapters.store.sqlite import SqliteStore
from collector.metrics import Metrics
from tests.tmpfs import fill, mounted_tmpfs

ROOT = Path(__file__).resolve().parent.parent

# reads commands on stdin: "log <padding>", "close2"; answers each with dropped_lines()
CHILD = """
import os, sys
import structlog
from collector import logs
logs.configure("json")
log = structlog.get_logger("probe")
for n, line in enumerate(sys.stdin):
    op, *args = line.split()
    if op == "log":
        log.info("probe", n=n, pad="x" * int(args[0]))
    elif op == "close2":
        os.close(2)
    print(logs.dropped_lines(), flush=True)
"""


class Child:
    def __init__(self, stderr: Any, shell_suffix: str = "") -> None:
        cmd = [sys.executable, "-c", CHILD]
        if shell_suffix:  # e.g. "2>&-": the child starts with descriptor 2 closed
            cmd = ["sh", "-c", 'exec "$0" -c "$1" ' + shell_suffix, *cmd[:1], CHILD]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )

    def send(self, command: str) -> int:
        """One command; the child's count of dropped lines after it."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"the child died (exit {self.proc.wait(10)}): a log line raised"
        return int(answer)

    def finish(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        code = self.proc.wait(30)
        self.proc.stdout.close()
        return code


def test_a_pipe_whose_reader_is_gone_drops_lines() -> None:
    child = Child(subprocess.PIPE)
    assert child.proc.stderr is not None
    child.proc.stderr.close()  # the reader goes: each write is EPIPE
    assert child.send("log 10") == 1
    assert child.send("log 10") == 2
    assert child.finish() == 0


def test_a_descriptor_closed_under_the_logger_drops_lines(tmp_path: Path) -> None:
    with (tmp_path / "err.log").open("ab") as err:
        child = Child(err)
        assert child.send("log 10") == 0
        assert child.send("close2") == 0
        assert child.send("log 10") == 1  # EBADF
        assert child.finish() == 0
    [line] = (tmp_path / "err.log").read_text().splitlines()
    assert json.loads(line)["event"] == "probe"


def test_a_process_started_without_stderr_drops_lines() -> None:
    child = Child(subprocess.DEVNULL, shell_suffix="2>&-")
    assert child.send("log 10") == 1
    assert child.finish() == 0


@pytest.fixture(name="small_disk")
def _small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted for the test, unmounted after it."""
    with mounted_tmpfs(tmp_path, "64k") as disk:
        yield disk


def test_a_full_disk_drops_lines_and_the_next_line_after_it_is_whole(small_disk: Path) -> None:
    """On a full disk a line that fits in part is cut off there (the kernel took that much)
    and counted as dropped; once there is space, the next line starts a line of its own."""
    path = small_disk / "err.log"
    path.write_text('{"event": "first"}\n')  # the file's page has room for ~4 KB more
    filler = fill(small_disk)
    with path.open("ab") as err:
        child = Child(err)
        assert child.send("log 6000") == 1  # part of it fits, then ENOSPC
        assert child.send("log 10") == 2  # nothing fits
        filler.unlink()
        assert child.send("log 10") == 2
        assert child.finish() == 0
    first, torn, last = path.read_bytes().split(b"\n")[:-1]
    assert json.loads(first) == {"event": "first"}
    assert torn.startswith(b'{"n": 0, "pad": "xxx') and len(torn) < 6000
    assert json.loads(last)["n"] == 2


@pytest.mark.anyio
async def test_dropped_lines_are_counted_on_metrics(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "collector.db")
    await store.open()
    try:

        async def dropped() -> float:
            text = (await Metrics().render(store)).decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            return families["collector_log_lines_dropped"].samples[0].value

        before = await dropped()
        read, write = os.pipe()
        os.close(read)
        with os.fdopen(write, "w") as broken:
            logs.LineWriter(broken).info("nobody reads this")  # EPIPE, not raised
        assert await dropped() == before + 1
    finally:
        await store.close()
