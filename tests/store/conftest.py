"""The stores the contract suite (test_contract.py) runs against, one param each.

To add a store: add to STORES a function of the test's request and a fresh directory that
sets up a database of the test's own and returns how to make a store over it (not yet
opened; each call a new store object, as after a restart).

The PostgreSQL leg runs on the machine's server (tests/pg.py): one database per test run
(`collector_test_<random>`, dropped at the end), a schema of its own in it per test (the
store works in it through `?search_path=`). Without a server it is skipped with the
reason, except under CI=true, where that is a failure.

A store that several instances may share (`shared`) also passes test_shared*.py: add to
SHARED a function that makes a store over the test's database as a named instance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.adapters.store.postgres import PostgresStore
from collector.adapters.store.sqlite import SqliteStore
from collector.ports import ClaimStore, SessionStore
from tests.pg import drop_schema, run_apart, scratch_database, scratch_schema


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """This run's own database on the PostgreSQL server: its URL."""
    with scratch_database() as url:
        yield url


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A URL to a schema of this test's own in the run's database (dropped after it)."""
    schema, url = run_apart(lambda: scratch_schema(pg_database))
    try:
        yield url
    finally:
        run_apart(lambda: drop_schema(pg_database, schema))


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], SessionStore]:
    path = tmp_path / "db" / "collector.db"
    return lambda: SqliteStore(path)


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], SessionStore]:
    url = request.getfixturevalue("pg_url")
    return lambda: PostgresStore(url, pool_size=4)


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], Callable[[], SessionStore]]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}
MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, ())) for name in sorted(STORES)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], SessionStore]:
    """Makes a store (not opened) over this test's own database of each implementation:
    each call a new store object over the same database, as after a restart."""
    return STORES[request.param](request, tmp_path)


@pytest.fixture
async def store(make_store: Callable[[], SessionStore]) -> AsyncIterator[SessionStore]:
    """An open, empty store of each implementation; closed after the test."""
    made = make_store()
    await made.open()
    try:
        yield made
    finally:
        await made.close()


def _postgres_instance(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Any]:
    url = request.getfixturevalue("pg_url")
    return lambda instance: PostgresStore(url, pool_size=4, instance=instance)


SHARED: dict[str, Callable[[pytest.FixtureRequest, Path], Callable[[str], Any]]] = {
    "postgres": _postgres_instance,
}


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, ())) for name in sorted(SHARED)])
def make_instance(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Any]:
    """Makes a shared store (not opened) over this test's own database as the instance
    named: two of them are two instances (two pools) on one database."""
    return SHARED[request.param](request, tmp_path)


@pytest.fixture
async def pair(make_instance: Callable[[str], Any]) -> AsyncIterator[tuple[Any, Any]]:
    """Two open shared stores on one empty database: instances "A" and "B"."""
    a, b = make_instance("A"), make_instance("B")
    await a.open()
    await b.open()
    assert isinstance(a, ClaimStore) and a.shared
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
