"""Shared fixtures: the anyio backend and paths to the project's own test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(name="anyio_backend", scope="session")
def _anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(name="forms_dir")
def _forms_dir() -> Path:
    return FIXTURES / "forms"
