"""A small real disk for a test: a tmpfs mounted under its tmp_path, and a file that fills it.

Mounting needs root (CI runs as root). Elsewhere the test skips, saying why; under CI=true
a skip is a failure, so such tests cannot silently stop running there.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def cannot_run(reason: str) -> None:
    """Skip the test, or fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this test must run, not skip")
    pytest.skip(reason)


@contextmanager
def mounted_tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (as mount's size=, e.g. "64k") at tmp_path/disk, unmounted after."""
    if os.geteuid() != 0:
        cannot_run("mounting a tmpfs needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        cannot_run("no mount/umount command on this system")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        cannot_run(f"mount -t tmpfs not permitted here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the disk with one file until ENOSPC, then give back `leave` bytes of it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)
    return filler


def free_bytes(disk: Path) -> int:
    """Bytes an unprivileged writer may still write on the disk."""
    st = os.statvfs(disk)
    return st.f_bavail * st.f_frsize
