"""The fault run: calls keep arriving while, one after another, Telnyx answers 429/5xx or
too late, another connection holds the store's write lock, the JSONL sink's disk fills,
the webhook sink's receiver hangs, and the server is `kill -9`ed (and restarted); then
every call's submission is counted in every sink, and every command at the fake Telnyx.

The faults never overlap (each is survived on its own), but calls are in flight through
all of them, so each one lands in the middle of calls at every stage.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from soak.checks import Tally, delivered_everywhere, tally
from soak.stack import Stack, stack, until

TELNYX_TIMEOUT_DELAY = 11.0  # the server's command timeout is 10 s


@dataclass(frozen=True)
class Plan:
    """What one fault run injects, and how long each fault lasts."""

    kills: int = 10
    telnyx: tuple[int | str, ...] = (429, 500, 502, 503, "timeout", 429, 503, "timeout")
    lock_seconds: float = 8.0  # another connection holds the store's write lock
    disk_full_seconds: float = 8.0  # the JSONL sink's tmpfs is full
    hang_seconds: float = 8.0  # the webhook receiver holds every request
    gap_seconds: float = 2.0  # calls flow undisturbed between two faults
    call_every_seconds: float = 0.5  # a new call this often while faults run
    disk_size: str = "32m"
    drain_timeout: float = 600.0  # how long to wait for every delivery at the end

    @classmethod
    def short(cls) -> Plan:
        """About a minute: each fault once, 3 kill -9s (the CI test)."""
        return cls(
            kills=3,
            telnyx=(429, 503, "timeout"),
            lock_seconds=5.0,
            disk_full_seconds=5.0,
            hang_seconds=5.0,
            gap_seconds=1.5,
            call_every_seconds=1.0,
            disk_size="8m",
            drain_timeout=240.0,
        )


@dataclass
class Step:
    name: str
    started: float
    seconds: float = 0.0
    note: str = ""


@dataclass
class FaultRun:
    tally: Tally
    steps: list[Step] = field(default_factory=list)
    disk: str = "tmpfs"  # or why the full-disk fault did not run
    drained: bool = True
    seconds: float = 0.0
    kills: int = 0
    starts: int = 0


def can_mount() -> str | None:
    """None when a tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None or shutil.which("umount") is None:
        return "no mount/umount command on this system"
    return None


@asynccontextmanager
async def small_disk(path: Path, size: str) -> AsyncIterator[Path | str]:
    """A tmpfs of `size` mounted at `path` (yields the path), or why it could not be."""
    why = can_mount()
    if why is not None:
        yield why
        return
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        yield f"mount -t tmpfs refused: {done.stderr.strip()}"
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk with one file until ENOSPC."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 65536)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        while True:  # the last partial block
            try:
                os.write(fd, b"\0" * 512)
            except OSError:
                break
    finally:
        os.close(fd)
    return filler


def hold_write_lock(db: Path, seconds: float) -> None:
    """Another connection takes the store's write lock and keeps it `seconds`."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def _place_calls(st: Stack, every: float, stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        await st.place_call(i)
        i += 1
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def _steps(plan: Plan, disk: Path | None) -> list[tuple[str, Callable[[Stack], Awaitable[str]]]]:
    def telnyx(kind: int | str) -> Callable[[Stack], Awaitable[str]]:
        async def run(st: Stack) -> str:
            st.fake.faults.arm(kind, delay=TELNYX_TIMEOUT_DELAY)
            await until(lambda: not st.fake.faults.armed, timeout=120)
            spent = st.fake.faults.spent[-1]
            return f"on {spent.action}"

        return run

    async def lock(st: Stack) -> str:
        await asyncio.to_thread(hold_write_lock, st.workdir / "collector.db", plan.lock_seconds)
        return f"{plan.lock_seconds:g} s"

    async def full(st: Stack) -> str:
        assert disk is not None
        filler = await asyncio.to_thread(fill, disk)
        await asyncio.sleep(plan.disk_full_seconds)
        filler.unlink()
        return f"{plan.disk_full_seconds:g} s"

    async def hang(st: Stack) -> str:
        st.receiver.hang()
        await asyncio.sleep(plan.hang_seconds)
        st.receiver.release()
        return f"{plan.hang_seconds:g} s, {st.receiver.hung} requests held"

    async def kill(st: Stack) -> str:
        st.server.kill9()
        await st.server.start()
        return f"#{st.server.kills}, restarted"

    others: list[tuple[str, Callable[[Stack], Awaitable[str]]]] = [
        (f"Telnyx {kind}", telnyx(kind)) for kind in plan.telnyx
    ]
    others.append(("store write-locked", lock))
    if disk is not None:
        others.append(("JSONL disk full", full))
    others.append(("webhook receiver hangs", hang))
    order: list[tuple[str, Callable[[Stack], Awaitable[str]]]] = []
    for i in range(max(len(others), plan.kills)):
        if i < len(others):
            order.append(others[i])
        if i < plan.kills:
            order.append(("kill -9", kill))
    return order


async def run(
    workdir: Path, plan: Plan | None = None, log: Callable[[str], None] = print
) -> FaultRun:
    """One fault run in `workdir`; returns the tally (check `.tally.ok`)."""
    plan = plan or Plan()
    began = time.monotonic()
    async with small_disk(workdir / "disk", plan.disk_size) as disk:
        mounted = disk if isinstance(disk, Path) else None
        async with stack(workdir, jsonl_dir=mounted) as st:
            result = FaultRun(tally=Tally(), disk="tmpfs" if mounted else str(disk))
            stop = asyncio.Event()
            caller = asyncio.create_task(_place_calls(st, plan.call_every_seconds, stop))
            try:
                await asyncio.sleep(plan.gap_seconds)
                for name, step in _steps(plan, mounted):
                    at = time.monotonic()
                    note = await step(st)
                    result.steps.append(Step(name, at - began, time.monotonic() - at, note))
                    log(f"  {at - began:6.1f} s  {name}: {note}")
                    await asyncio.sleep(plan.gap_seconds)
            finally:
                stop.set()
                await caller
            log(f"  {time.monotonic() - began:6.1f} s  {len(st.calls)} calls placed; draining")
            try:
                await until(
                    lambda: delivered_everywhere(st), timeout=plan.drain_timeout, interval=0.5
                )
                await asyncio.wait_for(st.fake.idle(), 120)
                await asyncio.sleep(3.0)  # anything sent twice would have arrived by now
            except TimeoutError:
                result.drained = False
            result.tally = tally(st)
            result.kills, result.starts = st.server.kills, st.server.starts
            result.seconds = time.monotonic() - began
    return result
