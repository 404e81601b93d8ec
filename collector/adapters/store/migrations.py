"""Schema versions of the SQLite store. Append a migration; never edit a shipped one."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('schema', '1');
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        call_control_id TEXT NOT NULL UNIQUE,
        form TEXT,
        state TEXT NOT NULL,
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        terminal INTEGER NOT NULL DEFAULT 0,
        deadline REAL,
        deadline_kind TEXT,
        body TEXT NOT NULL
    );
    CREATE INDEX sessions_started ON sessions (started_at DESC, id DESC);
    CREATE INDEX sessions_deadline ON sessions (deadline) WHERE deadline IS NOT NULL;
    CREATE TABLE seen_events (
        id TEXT PRIMARY KEY,
        call_control_id TEXT,
        received_at REAL NOT NULL
    );
    CREATE INDEX seen_events_received ON seen_events (received_at);
    CREATE TABLE commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        call_control_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        action TEXT NOT NULL,
        body TEXT NOT NULL,
        command_id TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        decided_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        last_error TEXT,
        UNIQUE (session_id, seq)
    );
    CREATE INDEX commands_pending ON commands (call_control_id, seq) WHERE state = 'pending';
    CREATE TABLE submissions (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL UNIQUE,
        form TEXT NOT NULL,
        status TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        submission_id TEXT NOT NULL REFERENCES submissions (id),
        sink TEXT NOT NULL,
        key TEXT NOT NULL,
        replay INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        delivered_at REAL,
        last_error TEXT,
        UNIQUE (sink, key)
    );
    CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
    """,
    # 2: no index on sessions.deadline: the session timeout moves with every event, so each
    # upsert rewrote an index entry that only the start-up scan (sessions_with_deadlines) read
    """
    DROP INDEX IF EXISTS sessions_deadline;
    """,
    # 3: dead events: acknowledged events that failed to apply for a reason a redelivery
    # cannot change (decide() raised, the step could not be serialised or stored). No body:
    # it may hold sensitive values; the error is redacted (quoted text and long numbers cut)
    """
    CREATE TABLE dead_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        call_control_id TEXT NOT NULL,
        session_id TEXT,
        event_type TEXT NOT NULL,
        stage TEXT NOT NULL,
        error TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE INDEX dead_events_received ON dead_events (received_at DESC, id DESC);
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the newest schema; returns the version it is at."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema {version} is newer than this collector knows ({len(MIGRATIONS)})"
        )
    for number in range(version, len(MIGRATIONS)):
        conn.executescript(
            "BEGIN;" + MIGRATIONS[number] + f"; PRAGMA user_version = {number + 1}; COMMIT;"
        )
    return len(MIGRATIONS)
