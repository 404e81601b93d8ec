"""Files a newcomer reads before the code: the license, and what each make target installs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# SHA-256 of https://www.apache.org/licenses/LICENSE-2.0.txt, byte for byte.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_license_file_is_the_official_apache_2_text_pyproject_names() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_bytes()
    assert b"Apache License\n                           Version 2.0, January 2004" in text
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256


def _make_dry_run(target: str, venv: Path) -> list[str]:
    """The commands `make TARGET` would run on a machine with no virtualenv yet."""
    # under `make test` this runs in a sub-make: MAKELEVEL and MAKEFLAGS would add
    # "make[1]: Entering directory" lines and the parent's flags
    drop = ("PORT", "COLLECTOR_PORT", "MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    r = subprocess.run(
        ["make", "--no-print-directory", "-n", f"VENV={venv}", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def _installs(lines: list[str]) -> list[str]:
    return [line.split("pip install --quiet ", 1)[1] for line in lines if "pip install" in line]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_run_installs_only_the_package_and_test_lint_bench_the_test_extras(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    run = _make_dry_run("run", venv)
    assert any(f"-m venv {venv}" in line for line in run)  # creates the virtualenv
    assert _installs(run) == ["--upgrade pip", "-e ."]
    assert run[-1].endswith("collector serve --port 8000")
    for target in ("test", "lint", "bench"):
        lines = _make_dry_run(target, venv)
        assert any(f"-m venv {venv}" in line for line in lines), target
        assert "-e '.[test]'" in _installs(lines), target
