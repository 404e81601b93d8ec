"""What the worker tests share: a clock the test moves, and a store on a temp file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collector.adapters.store.sqlite import SqliteStore

T0 = 1_750_000_000.0  # the tests' "now": far from the real time, so no real clock is read


class Clock:
    """The workers' Clock port, moved by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture(name="clock")
def _clock() -> Clock:
    return Clock()


@pytest.fixture(name="db")
def _db(tmp_path: Path) -> Path:
    return tmp_path / "collector.db"


@pytest.fixture(name="store")
async def _store(db: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(db)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
