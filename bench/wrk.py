"""Saturating load with wrk: one thread and one connection per lane, pre-signed requests.

Each wrk thread replays its lane in order (bench/replay.lua) and stops when the lane is
done; the run ends when every lane is done or after `max_seconds` (SIGINT, which makes
wrk print its results). Throughput is counted from the first request to the last
response, so an early end does not dilute it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

from bench.events import Event, write_lane_files
from bench.servers import LOAD_CORE, CpuMeter

SCRIPT = Path(__file__).resolve().parent / "replay.lua"


@dataclass
class WrkResult:
    events: int  # 2xx responses
    failed: int  # other responses
    seconds: float
    latency_ms: dict[str, float]
    errors: dict[str, int]
    acked: list[int]  # per lane: how many of its events were acknowledged (a prefix)
    bad: list[list[int]]  # per lane: 1-based positions of non-2xx responses
    exhausted: bool  # every lane sent all its events

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("bench: wrk is not installed (Debian: apt-get install -y wrk)")
    return path


def run_wrk(
    url: str,
    lanes: list[list[Event]],
    key: SigningKey,
    folder: Path,
    max_seconds: float,
    meter: CpuMeter | None = None,
) -> WrkResult:
    """Sign the lanes now, replay them against `url`, and read wrk's results."""
    if folder.exists():
        shutil.rmtree(folder)
    host = url.split("//", 1)[1]
    write_lane_files(lanes, key, host, folder)
    n = len(lanes)
    wrk = [wrk_binary(), f"-t{n}", f"-c{n}", f"-d{int(max_seconds) + 5}s", "--timeout", "10s"]
    argv = ["taskset", "-c", LOAD_CORE, *wrk, "-s", str(SCRIPT), url]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={"BENCH_DIR": str(folder), "PATH": "/usr/bin:/bin"},
    )
    if meter is not None:
        meter.start()
    deadline = time.monotonic() + max_seconds
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list(folder.glob("done-*"))) >= n:
            break
        time.sleep(0.05)
    if meter is not None:
        meter.stop()
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0].decode(errors="replace")
    line = next((x for x in out.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no results:\n{out}")
    doc = json.loads(line.removeprefix("BENCH_JSON "))
    lane_docs = sorted(doc["lanes"], key=lambda x: x["id"])
    started = [x["first"] for x in lane_docs if x["first"] > 0]
    ended = [x["last"] for x in lane_docs if x["last"] > 0]
    seconds = max(ended) - min(started) if started and ended else 0.0
    failed = sum(x["failed"] for x in lane_docs)
    return WrkResult(
        events=sum(x["responses"] for x in lane_docs) - failed,
        failed=failed,
        seconds=seconds,
        latency_ms={k: v / 1000 for k, v in doc["latency_us"].items()},
        errors=doc["errors"],
        acked=[x["responses"] for x in lane_docs],
        bad=[x["bad"] for x in lane_docs],
        exhausted=all(x["responses"] >= x["count"] for x in lane_docs),
    )
