"""Fixtures for the sink tests: the anyio backend (asyncio only)."""

from __future__ import annotations

import pytest


@pytest.fixture(name="anyio_backend", scope="session")
def _anyio_backend() -> str:
    return "asyncio"
