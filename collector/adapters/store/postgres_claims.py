"""Claims and leases of the PostgreSQL store (collector.ports.ClaimStore).

Each instance claims the work it does: a row's `claimed_by` is the instance, its
`lease_until` when the claim runs out unless renewed. A claim is one statement that picks
rows with `FOR UPDATE SKIP LOCKED` (two instances claiming at once get disjoint rows and
never wait on each other) and records the claim on them; a row is claimable when it is
unclaimed or its lease has run out (a command also when the claiming instance holds it:
one task per session sends them, and claims again only once it has finished what it
claimed; a delivery or a deadline in flight here is nobody's to claim). The statement
re-checks each row it locked (a command finished meanwhile is not claimed), and reports
whose lapsed lease a claim took over (`taken_from`).

Commands are claimed by session: a session's first pending command is the one claimable
(`NOT EXISTS` an earlier pending one), and claiming it claims all of that session's
pending commands, so one instance sends them in decided order; another instance cannot
claim a later one while an earlier one is pending, claimed or not.
"""

from __future__ import annotations

from typing import Any

from collector.adapters.store.postgres_part import PostgresPart
from collector.adapters.store.rows import command_row, delivery_row
from collector.records import CommandRow, DeadlineRow, DeliveryRow

_TAKEN = "CASE WHEN p.before <> $1 AND p.lease < $2 THEN p.before END AS taken_from"

# $1 instance, $2 now, $3 until, $4 limit (sessions) [, $5 session id]
_CLAIM_COMMANDS = """
WITH heads AS (
    SELECT c.session_id FROM commands c
    WHERE c.state = 'pending' {session}
    AND (c.lease_until IS NULL OR c.lease_until < $2 OR c.claimed_by = $1)
    AND NOT EXISTS (
        SELECT 1 FROM commands e
        WHERE e.session_id = c.session_id AND e.state = 'pending' AND e.seq < c.seq
    )
    ORDER BY c.id LIMIT $4
    FOR UPDATE OF c SKIP LOCKED
), p AS (
    SELECT c.id, c.claimed_by AS before, c.lease_until AS lease FROM commands c
    WHERE c.session_id IN (SELECT session_id FROM heads) AND c.state = 'pending'
)
UPDATE commands c SET claimed_by = $1, lease_until = $3
FROM p WHERE c.id = p.id AND c.state = 'pending'
RETURNING c.*, {taken}
""".replace("{taken}", _TAKEN)
CLAIM_COMMANDS = _CLAIM_COMMANDS.replace("{session}", "")
CLAIM_SESSION_COMMANDS = _CLAIM_COMMANDS.replace("{session}", "AND c.session_id = $5")
NEXT_COMMAND = (
    "SELECT MIN(lease_until) FROM commands WHERE state = 'pending'"
    " AND claimed_by IS DISTINCT FROM $1 AND lease_until IS NOT NULL"
)

CLAIM_DELIVERIES = """
WITH p AS (
    SELECT d.id, d.claimed_by AS before, d.lease_until AS lease FROM deliveries d
    WHERE d.state = 'pending' AND d.next_at <= $2
    AND (d.lease_until IS NULL OR d.lease_until < $2)
    ORDER BY d.next_at, d.id LIMIT $4
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE deliveries d SET claimed_by = $1, lease_until = $3
    FROM p WHERE d.id = p.id AND d.state = 'pending'
    RETURNING d.*, {taken}
)
SELECT c.*, s.body AS submission FROM claimed c JOIN submissions s ON s.id = c.submission_id
ORDER BY c.next_at, c.id
""".replace("{taken}", _TAKEN)
# when a pending delivery not claimable now may be: its due time, or its lease's end
NEXT_DELIVERY = (
    "SELECT MIN(GREATEST(next_at, COALESCE(lease_until, next_at))) FROM deliveries"
    " WHERE state = 'pending' AND claimed_by IS DISTINCT FROM $1"
    " AND GREATEST(next_at, COALESCE(lease_until, next_at)) > $2"
)

CLAIM_DEADLINES = """
WITH p AS (
    SELECT s.id, s.deadline_claimed_by AS before, s.deadline_lease_until AS lease
    FROM sessions s
    WHERE s.deadline <= $2
    AND (s.deadline_lease_until IS NULL OR s.deadline_lease_until < $2)
    ORDER BY s.deadline LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE sessions s SET deadline_claimed_by = $1, deadline_lease_until = $3
FROM p WHERE s.id = p.id AND s.deadline <= $2
RETURNING s.id, s.call_control_id, s.deadline_kind, s.deadline, {taken}
""".replace("{taken}", _TAKEN)
# a deadline not claimed now: its time (past, if it was locked: look again soon) or
# another instance's lease's end (a fired one's is infinite)
NEXT_DEADLINE = (
    "SELECT MIN(GREATEST(deadline, COALESCE(deadline_lease_until, deadline))) FROM sessions"
    " WHERE deadline IS NOT NULL AND deadline_claimed_by IS DISTINCT FROM $1"
)
# a deadline fired (its step did not move it: it stays claimed for good, never fired
# again) or not (the claim let go, for any instance to fire it)
FINISH_DEADLINE = """
UPDATE sessions SET
    deadline_claimed_by = CASE WHEN $3 THEN deadline_claimed_by END,
    deadline_lease_until = CASE WHEN $3 THEN 'Infinity'::float8 END
WHERE id = $1 AND deadline = $2 AND deadline_claimed_by = $4
"""

RENEW = {
    "command": "UPDATE commands SET lease_until = $3 WHERE id = ANY($2::bigint[])"
    " AND claimed_by = $1 AND state = 'pending' RETURNING id",
    "delivery": "UPDATE deliveries SET lease_until = $3 WHERE id = ANY($2::bigint[])"
    " AND claimed_by = $1 AND state = 'pending' RETURNING id",
    "deadline": "UPDATE sessions SET deadline_lease_until = $3 WHERE id = ANY($2::text[])"
    " AND deadline_claimed_by = $1 AND deadline IS NOT NULL RETURNING id",
}

RELEASE = """
WITH c AS (
    UPDATE commands SET claimed_by = NULL, lease_until = NULL
    WHERE claimed_by = $1 AND state = 'pending' RETURNING 1
), d AS (
    UPDATE deliveries SET claimed_by = NULL, lease_until = NULL
    WHERE claimed_by = $1 AND state = 'pending' RETURNING 1
), s AS (
    UPDATE sessions SET deadline_claimed_by = NULL, deadline_lease_until = NULL
    WHERE deadline_claimed_by = $1 AND deadline IS NOT NULL
    AND deadline_lease_until < 'Infinity'::float8 RETURNING 1
)
SELECT (SELECT COUNT(*) FROM c) + (SELECT COUNT(*) FROM d) + (SELECT COUNT(*) FROM s)
"""

REISSUE = "UPDATE commands SET retry = $3, window_start = $4 WHERE session_id = $1 AND seq = $2"


def claimed_command(r: Any) -> CommandRow:
    row = command_row(r)
    row.retry, row.window_start, row.taken_from = r["retry"], r["window_start"], r["taken_from"]
    return row


def claimed_delivery(r: Any) -> DeliveryRow:
    row = delivery_row(r)
    row.taken_from = r["taken_from"]
    return row


def claimed_deadline(r: Any) -> DeadlineRow:
    return DeadlineRow(
        session_id=r["id"],
        call_control_id=r["call_control_id"],
        kind=r["deadline_kind"],
        due=r["deadline"],
        taken_from=r["taken_from"],
    )


class Claims(PostgresPart):
    """The ClaimStore half of PostgresStore."""

    async def claim_commands(
        self, now: float, until: float, *, session_id: str | None = None, limit: int = 100
    ) -> tuple[list[CommandRow], float | None]:
        async with self.pool.acquire() as conn:
            if session_id is not None:
                rows = await conn.fetch(
                    CLAIM_SESSION_COMMANDS, self.instance, now, until, limit, session_id
                )
                nxt = None
            else:
                rows = await conn.fetch(CLAIM_COMMANDS, self.instance, now, until, limit)
                nxt = await conn.fetchval(NEXT_COMMAND, self.instance)
        claimed = sorted((claimed_command(r) for r in rows), key=lambda c: (c.session_id, c.seq))
        return claimed, nxt

    async def reissue_command(
        self, session_id: str, seq: int, retry: int, window_start: float
    ) -> None:
        await self._write(REISSUE, session_id, seq, retry, window_start)

    async def claim_deliveries(
        self, now: float, until: float, limit: int = 100
    ) -> tuple[list[DeliveryRow], float | None]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(CLAIM_DELIVERIES, self.instance, now, until, limit)
            nxt = await conn.fetchval(NEXT_DELIVERY, self.instance, now)
        return [claimed_delivery(r) for r in rows], nxt

    async def claim_deadlines(
        self, now: float, until: float, limit: int = 100
    ) -> tuple[list[DeadlineRow], float | None]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(CLAIM_DEADLINES, self.instance, now, until, limit)
            nxt = await conn.fetchval(NEXT_DEADLINE, self.instance)
        claimed = sorted((claimed_deadline(r) for r in rows), key=lambda d: d.due)
        return claimed, nxt

    async def finish_deadline(self, session_id: str, due: float, fired: bool) -> None:
        await self._write(FINISH_DEADLINE, session_id, due, fired, self.instance)

    async def renew(self, kind: str, keys: list[Any], until: float) -> set[Any]:
        if not keys:
            return set()
        rows = await self.pool.fetch(RENEW[kind], self.instance, list(keys), until)
        return {r[0] for r in rows}

    async def release(self) -> int:
        released: int = await self.pool.fetchval(RELEASE, self.instance)
        return released
