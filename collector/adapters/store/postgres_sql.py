"""The PostgreSQL store's longer statements: a whole step (and its arguments), one page,
the prune."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from collector.core.session.commands import Command
from collector.core.session.model import DeadlineKind, Session
from collector.core.session.submission import Submission
from collector.ports import NOTICE_COMMAND, NOTICE_DEADLINE, NOTICE_DELIVERY, NOTICE_SESSION

# One step as one statement, so one transaction and one round trip. Its arguments are
# PostgresStore.step_rows(): $1-$10 the session, $11-$15 its commands as parallel arrays,
# $16-$19 the submission (all NULL without one), $20 the sinks it goes to, and for a
# versioned step on a stored session $21, the version its decision was made from. The
# session is written first (`upserted`): as a new row (version 0: nothing if the call
# already has a session), as an update of the stored row at that version (else nothing),
# or, unversioned, upserted by id. Everything else is written only beside it. Each
# command, submission and delivery already stored is kept as it was (ON CONFLICT DO
# NOTHING, as SQLite's INSERT OR IGNORE); an unversioned second session for one call
# violates its UNIQUE and the whole statement is undone. The deliveries' foreign key is
# checked at the statement's end, when the submission inserted beside them is there. A
# step that changes the session's deadline lets go of the deadline's claim. The statement
# answers the new version, or (nothing written) the call's stored session and version,
# locked FOR SHARE so that it is the newest committed one.
_COLUMNS = (
    "id, call_control_id, form, state, started_at, updated_at, terminal, deadline,"
    " deadline_kind, body"
)
_VALUES = "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
_RELEASE_DEADLINE = """
    deadline_claimed_by = CASE WHEN sessions.deadline IS NOT DISTINCT FROM {new}
        THEN sessions.deadline_claimed_by END,
    deadline_lease_until = CASE WHEN sessions.deadline IS NOT DISTINCT FROM {new}
        THEN sessions.deadline_lease_until END"""
_NEW_SESSION = f"""
    INSERT INTO sessions ({_COLUMNS}) VALUES {_VALUES}
    ON CONFLICT DO NOTHING
    RETURNING version"""
_STORED_SESSION = f"""
    UPDATE sessions SET call_control_id = $2, form = $3, state = $4, started_at = $5,
        updated_at = $6, terminal = $7, deadline = $8, deadline_kind = $9, body = $10,
        version = sessions.version + 1,{_RELEASE_DEADLINE.format(new="$8")}
    WHERE id = $1 AND version = $21
    RETURNING version"""
_ANY_SESSION = f"""
    INSERT INTO sessions ({_COLUMNS}) VALUES {_VALUES}
    ON CONFLICT (id) DO UPDATE SET call_control_id = EXCLUDED.call_control_id,
        state = EXCLUDED.state, updated_at = EXCLUDED.updated_at, terminal = EXCLUDED.terminal,
        deadline = EXCLUDED.deadline, deadline_kind = EXCLUDED.deadline_kind, body = EXCLUDED.body,
        version = sessions.version + 1,{_RELEASE_DEADLINE.format(new="EXCLUDED.deadline")}
    RETURNING version"""
_REST = """
), decided AS (
    INSERT INTO commands (session_id, call_control_id, seq, action, body, command_id,
        decided_at, updated_at)
    SELECT $1, $2, c.seq, c.action, c.body, c.command_id, c.decided_at, c.decided_at
    FROM unnest($11::bigint[], $12::text[], $13::json[], $14::text[], $15::float8[])
        WITH ORDINALITY AS c (seq, action, body, command_id, decided_at, n)
    WHERE EXISTS (SELECT 1 FROM upserted)
    ORDER BY c.n
    ON CONFLICT DO NOTHING
), submitted AS (
    INSERT INTO submissions (id, session_id, form, status, body, created_at)
    SELECT $16::text, $1, $17::text, $18::text, $19::json, $6
    WHERE $16::text IS NOT NULL AND EXISTS (SELECT 1 FROM upserted)
    ON CONFLICT DO NOTHING
), delivered AS (
    INSERT INTO deliveries (submission_id, sink, key, next_at, created_at, updated_at)
    SELECT $16::text, d.sink, $16::text, $6, $6, $6
    FROM unnest($20::text[]) WITH ORDINALITY AS d (sink, n)
    WHERE EXISTS (SELECT 1 FROM upserted)
    ORDER BY d.n
    ON CONFLICT DO NOTHING
)
SELECT u.version, cur.version AS stored_version, cur.body AS stored_body
FROM (SELECT (SELECT version FROM upserted) AS version) u
LEFT JOIN LATERAL (
    SELECT s.version, s.body FROM sessions s
    WHERE u.version IS NULL AND (s.id = $1 OR s.call_control_id = $2)
    ORDER BY s.id = $1 DESC LIMIT 1
    FOR SHARE
) cur ON TRUE
"""


def step_sql(version: int | None) -> str:
    """The statement of a step made from this stored version (0: none; None: any)."""
    if version is None:
        session = _ANY_SESSION
    elif version == 0:
        session = _NEW_SESSION
    else:
        session = _STORED_SESSION
    return "WITH upserted AS (" + session + _REST


STEP_ANY, STEP_NEW, STEP_STORED = step_sql(None), step_sql(0), step_sql(1)


@dataclass(frozen=True, slots=True)
class PreparedStep:
    """One step: its statement, its arguments, and the notices it sends once committed."""

    sql: str
    args: tuple[Any, ...]
    notices: tuple[tuple[str, str], ...]


def prepare_step(
    session: Session,
    commands: Iterable[Command] = (),
    submission: Submission | None = None,
    sinks: Iterable[str] = (),
    version: int | None = None,
) -> PreparedStep:
    """A step's statement (step_sql), its arguments, everything serialised (a value that
    cannot be serialised raises here), and the notices it sends once committed."""
    commands = list(commands)
    sinks = list(sinks) if submission is not None else []
    sub: tuple[Any, ...] = (None, None, None, None)
    if submission is not None:
        sub = (
            submission["submission_id"],
            submission["form"],
            submission["status"],
            orjson.dumps(submission).decode(),
        )
    args: tuple[Any, ...] = (
        session.id,
        session.call.call_control_id,
        session.form,
        session.state.value,
        session.started_at,
        session.updated_at,
        session.terminal,
        session.deadline,
        session.deadline_kind,
        session.model_dump_json(by_alias=True),
        [c.seq for c in commands],
        [c.action for c in commands],
        [orjson.dumps(c.body).decode() for c in commands],
        [c.command_id(session.id) for c in commands],
        [c.decided_at for c in commands],
        *sub,
        sinks,
    )
    if version:
        args += (version,)
    notices = [(NOTICE_SESSION, session.id)]
    if commands:
        notices.append((NOTICE_COMMAND, session.id))
    if sinks:
        notices.append((NOTICE_DELIVERY, sub[0]))
    # the session timeout moves on with every event: the instance that moved it wakes
    # for it, and the others' polls find it; any other deadline wakes every instance
    if session.deadline is not None and session.deadline_kind != DeadlineKind.TIMEOUT:
        notices.append((NOTICE_DEADLINE, repr(session.deadline)))
    return PreparedStep(step_sql(version), args, tuple(notices))


def newest_first(
    select: str,
    at: str,
    equal: dict[str, Any],
    since: float | None,
    before: tuple[Any, Any] | None,
) -> tuple[str, list[Any]]:
    """One page of a table newest first by (`at`, id): columns equal to the values given
    (empty ones skipped), `at` >= since, and keyset paging after the `before` cursor. The
    caller passes the LIMIT's value after the arguments returned."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column, value in equal.items():
        if value:
            where.append(f"{column} = {arg(value)}")
    if since is not None:
        where.append(f"{at} >= {arg(since)}")
    if before is not None:
        where.append(f"({at}, id) < ({arg(before[0])}, {arg(before[1])})")
    sql = select + (" WHERE " + " AND ".join(where) if where else "")
    return f"{sql} ORDER BY {at} DESC, id DESC LIMIT ${len(args) + 1}", args


_PRUNE_SESSIONS = """
WITH old AS (
    SELECT s.id FROM sessions s
    WHERE s.terminal AND s.updated_at < $1 AND s.deadline IS NULL
    AND NOT EXISTS (
        SELECT 1 FROM submissions sub JOIN deliveries d ON d.submission_id = sub.id
        WHERE sub.session_id = s.id AND d.state = 'pending'
    )
), commands_gone AS (
    DELETE FROM commands WHERE session_id IN (SELECT id FROM old)
), deliveries_gone AS (
    DELETE FROM deliveries WHERE submission_id IN
        (SELECT id FROM submissions WHERE session_id IN (SELECT id FROM old))
), submissions_gone AS (
    DELETE FROM submissions WHERE session_id IN (SELECT id FROM old)
), gone AS (
    DELETE FROM sessions WHERE id IN (SELECT id FROM old) RETURNING 1
)
SELECT COUNT(*) FROM gone
"""


# pg_try_advisory_xact_lock's key for the prune: one instance at a time prunes ("prune" in
# ASCII, far from the migrations' key)
PRUNE_LOCK_KEY = 0x7072756E65


def prune_statements() -> tuple[str, str, str]:
    """Forget old seen ids ($1: before when), old dead events ($1), and finished sessions
    with their rows ($1: the horizon; never one with a deadline or a pending delivery)."""
    return (
        "DELETE FROM seen_events WHERE received_at < $1",
        "DELETE FROM dead_events WHERE received_at < $1",
        _PRUNE_SESSIONS,
    )
