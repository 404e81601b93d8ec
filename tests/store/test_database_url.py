"""`database_url`: which store it names, what it refuses (one line, no password), and
redact(), which every message mentioning the URL goes through."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.adapters.store.database import make_store
from collector.adapters.store.postgres import PostgresStore
from collector.adapters.store.sqlite import SqliteStore
from collector.config import load_settings, parse_database_url, redact
from collector.errors import ConfigurationError
from collector.runtime import build_runtime

SECRET = "s3cret-Pa55word"
FORMS = Path(__file__).resolve().parents[1] / "fixtures" / "forms"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://u:{SECRET}@h:5432/db", "postgresql://u:***@h:5432/db"),
        (f"postgres://u:{SECRET}@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        (f"postgresql://h/db?user=u&password={SECRET}", "postgresql://h/db?user=u&password=***"),
        (f"postgresql://h/db?sslpassword={SECRET}&x=1", "postgresql://h/db?sslpassword=***&x=1"),
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgresql://h:5432/db?user=a@b", "postgresql://h:5432/db?user=a@b"),
        (f"postgresql://u:{SECRET}@h1:1,h2:2/db", "postgresql://u:***@h1:1,h2:2/db"),
        (f"postgresql://u:{SECRET}@[::1]:5/db", "postgresql://u:***@[::1]:5/db"),
        # malformed: a password holding / ? @ unencoded is cut all the same
        ("postgresql://u:s3/cr@et@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:s3?cret@h/db", "postgresql://u:***@h/db"),
        ("sqlite:///collector.db", "sqlite:///collector.db"),
        ("not a url", "not a url"),
    ],
)
def test_redact_cuts_the_password_wherever_it_is(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_sqlite_urls_are_read_as_before(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text('database_url = "sqlite:///data/c.db"\n')
    s = load_settings(cfg, {})
    assert (s.database.kind, s.database.target) == ("sqlite", str(tmp_path / "data" / "c.db"))
    assert s.sqlite_path == str(tmp_path / "data" / "c.db")
    assert parse_database_url("sqlite:////abs/c.db").target == "/abs/c.db"
    assert parse_database_url("sqlite:///:memory:").target == ":memory:"
    assert isinstance(make_store(s.database), SqliteStore)


def test_a_postgresql_url_from_the_environment_selects_the_postgres_store(tmp_path: Path) -> None:
    """`${ENV}` as everywhere; both schemes; the pool size setting; the password is held
    for the driver and shown as ***."""
    cfg = tmp_path / "collector.toml"
    cfg.write_text('database_url = "${DATABASE_URL}"\ndatabase_pool_size = 3\n')
    for scheme in ("postgresql", "postgres"):
        url = f"{scheme}://app:{SECRET}@db.internal:6543/collector"
        s = load_settings(cfg, {"DATABASE_URL": url})
        db = s.database
        assert (db.kind, db.target, db.hosts) == ("postgresql", url, "db.internal:6543")
        assert db.shown == f"{scheme}://app:***@db.internal:6543/collector"
        store = make_store(db, pool_size=s.database_pool_size)
        assert isinstance(store, PostgresStore) and store.pool_size == 3
        with pytest.raises(ConfigurationError) as caught:
            s.sqlite_path  # noqa: B018
        assert SECRET not in str(caught.value)
    assert load_settings(cfg, {"DATABASE_URL": "postgresql:///x"}).database.hosts == (
        "localhost:5432"
    )
    env = {"DATABASE_URL": "postgresql:///x", "COLLECTOR_DATABASE_POOL_SIZE": "0"}
    with pytest.raises(ConfigurationError, match="/database_pool_size: "):
        load_settings(cfg, env)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            f"mysql://u:{SECRET}@h/db",
            "not a database URL: expected sqlite:///.* \\(got mysql://\\)",
        ),
        (f"u:{SECRET}@h/db", "not a database URL: .*\\(got no scheme\\)"),
        ("sqlite:///", "no file after sqlite:///"),
        (f"postgresql://u:{SECRET}@h:port/db", "whose port is not a number"),
        (f"postgresql://u:{SECRET}@h:99999/db", "whose port is not a number"),
        (f"postgresql://u:{SECRET}?x@h/db", "whose port is not a number"),
        (f"postgresql://u:{SECRET}@[::1/db", "a \\[host\\] is not closed"),
        (f"postgresql://u:{SECRET}/x@h/db", "percent-encode any / # @"),
        (f"postgresql://u:{SECRET}@h/db#frag", "give no #fragment"),
    ],
)
def test_a_malformed_url_is_one_line_naming_the_setting_without_the_password(
    tmp_path: Path, url: str, message: str
) -> None:
    """At start-up (build_runtime) the URL is one problem among the others, one line."""
    environ = {"COLLECTOR_FORMS_DIR": str(FORMS), "COLLECTOR_DATABASE_URL": url}
    settings = load_settings(environ=environ)
    with pytest.raises(ConfigurationError) as caught:
        build_runtime(settings, environ)
    [line] = caught.value.problems
    assert line.startswith("(environment): /database_url: ")
    assert SECRET not in line and "s3cret" not in line
    assert re.search(message, line), line
