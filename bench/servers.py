"""Start, watch and stop the processes under test, each pinned to its core.

Servers under test run on core 0 (`taskset -c 0`); the fake Telnyx, wrk and the Python
sender run on core 1. Each server gets a fresh temporary folder (database, JSONL, log).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.postgres import ServerCpu
from bench.script import current_script

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE = "0"
LOAD_CORE = "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _core_ticks(core: str) -> tuple[int, int]:
    """(busy, total) clock ticks of one core so far, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(x) for x in line.split()[1:]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            return sum(ticks) - idle, sum(ticks)
    return 0, 0


class CpuMeter:
    """The server's CPU use during a pass (of every server, when several share core 0),
    and what else ran on its core meanwhile."""

    def __init__(self, server: Process | list[Process], postgres: ServerCpu | None = None) -> None:
        self.servers = server if isinstance(server, list) else [server]
        self.postgres = postgres  # and the PostgreSQL server's, for its database
        self.server_pct = self.others_pct = float("nan")
        self._start: tuple[float, float, tuple[int, int]] | None = None

    def _cpu(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)

    def start(self) -> None:
        if self.postgres is not None:
            self.postgres.start()
        self._start = (time.monotonic(), self._cpu(), _core_ticks(SERVER_CORE))

    def stop(self) -> None:
        assert self._start is not None
        wall0, cpu0, (busy0, total0) = self._start
        busy1, total1 = _core_ticks(SERVER_CORE)
        self.server_pct = 100 * (self._cpu() - cpu0) / (time.monotonic() - wall0)
        core_pct = 100 * (busy1 - busy0) / max(1, total1 - total0)
        self.others_pct = max(0.0, core_pct - self.server_pct)
        if self.postgres is not None:
            self.postgres.stop()

    def as_dict(self) -> dict[str, float]:
        out = {"server_cpu_pct": self.server_pct, "others_on_core0_pct": self.others_pct}
        if self.postgres is not None:
            out["postgres_cpu_pct"] = self.postgres.pct
        return out


@dataclass
class Process:
    """A child process with a log file and a health URL."""

    name: str
    argv: list[str]
    port: int
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    core: str = SERVER_CORE
    health: str = "/healthz"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 30.0) -> Process:
        env = {**os.environ, **self.env}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["taskset", "-c", self.core, *self.argv],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited at start-up; see {self.log}:\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + self.health, timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy in {timeout:.0f} s; see {self.log}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def peak_rss_mb(self) -> float:
        """VmHWM of the process, or of its largest child (a gunicorn worker)."""
        assert self.proc is not None
        pids = [self.proc.pid, *_children(self.proc.pid)]
        return max(_status_kb(p, "VmHWM") for p in pids) / 1024

    def rss_mb(self) -> float:
        assert self.proc is not None
        pids = [self.proc.pid, *_children(self.proc.pid)]
        return max(_status_kb(p, "VmRSS") for p in pids) / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its children so far."""
        assert self.proc is not None
        total = 0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fake_api(workdir: Path) -> Process:
    port = free_port()
    return Process(
        "fake_api",
        [sys.executable, "-m", "bench.fake_api", str(port)],
        port,
        workdir,
        env={"PYTHONPATH": str(ROOT)},
        core=LOAD_CORE,
    )


def collector(
    workdir: Path,
    public_key: str,
    api_url: str,
    database_url: str = "sqlite:///collector.db",
    name: str = "collector",
) -> Process:
    """`collector serve`, live mode against the fake API, one JSONL sink (in `workdir`),
    on SQLite in `workdir` unless another `database_url` is given."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "collector.toml"
    config.write_text(
        f"forms_dir = {json.dumps(str(current_script().forms_dir))}\n"
        f"database_url = {json.dumps(database_url)}\n"
        "[routing]\n"
        f"default_form = {json.dumps(current_script().form)}\n"
        "[[sinks]]\n"
        'type = "jsonl"\n'
        'path = "results.jsonl"\n'
    )
    env = {
        "TELNYX_API_KEY": "KEY_bench",
        "TELNYX_PUBLIC_KEY": public_key,
        "TELNYX_BASE_URL": f"{api_url}/v2",
        "COLLECTOR_ADMIN_TOKEN": "bench-admin-token",
    }
    argv = [
        sys.executable,
        "-m",
        "collector.cli",
        "serve",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return Process(name, argv, port, workdir, env=env)


def round_robin(workdir: Path, backends: list[str]) -> Process:
    """bench/round_robin.py in front of `backends`, on the load core."""
    port = free_port()
    return Process(
        "round_robin",
        [sys.executable, "-m", "bench.round_robin", str(port), *backends],
        port,
        workdir,
        env={"PYTHONPATH": str(ROOT)},
        core=LOAD_CORE,
        health="/_rr/stats",
    )


def seed(workdir: Path, public_key: str) -> Process:
    """The seed's pattern: Flask under gunicorn, one sync worker."""
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    argv = [
        gunicorn,
        "-w",
        "1",
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "bench.seed_app:app",
    ]
    return Process(
        "seed", argv, port, workdir, env={"TELNYX_PUBLIC_KEY": public_key, "PYTHONPATH": str(ROOT)}
    )


def floor(workdir: Path, public_key: str) -> Process:
    """The floor: bare verify-and-parse Starlette under uvicorn (uvloop, httptools)."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.floor_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return Process(
        "floor", argv, port, workdir, env={"TELNYX_PUBLIC_KEY": public_key, "PYTHONPATH": str(ROOT)}
    )
