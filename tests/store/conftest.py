"""The stores the contract suite (test_contract.py) runs against, one param each.

To add a store (the PostgreSQL one): add to STORES an async factory that takes a fresh
directory and returns the store, not yet opened (its own database or schema per test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from collector.adapters.store.sqlite import SqliteStore
from collector.ports import SessionStore


async def _sqlite(tmp_path: Path) -> SessionStore:
    return SqliteStore(tmp_path / "db" / "collector.db")


STORES: dict[str, Callable[[Path], Awaitable[SessionStore]]] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    """An open, empty store of each implementation; closed after the test."""
    made = await STORES[request.param](tmp_path)
    await made.open()
    try:
        yield made
    finally:
        await made.close()
