"""Submissions and deliveries of the PostgreSQL store: the DeliveryStore half and the
operator's requeue and replay (which notify every instance's delivery worker in their
transaction: they are rare)."""

from __future__ import annotations

import orjson

from collector.adapters.store.postgres_part import PostgresPart
from collector.adapters.store.rows import delivery_row
from collector.core.session.submission import Submission
from collector.ports import NOTICE_DELIVERY
from collector.records import DeliveryRow


class Deliveries(PostgresPart):
    """What PostgresStore does with submissions."""

    async def submission(self, submission_id: str) -> Submission | None:
        body = await self.pool.fetchval("SELECT body FROM submissions WHERE id = $1", submission_id)
        return orjson.loads(body) if body is not None else None

    async def poll_deliveries(
        self, now: float, limit: int = 100
    ) -> tuple[list[DeliveryRow], float | None]:
        async with self.pool.acquire() as conn:
            due = await conn.fetch(
                "SELECT d.*, s.body AS submission FROM deliveries d"
                " JOIN submissions s ON s.id = d.submission_id"
                " WHERE d.state = 'pending' AND d.next_at <= $1"
                " ORDER BY d.next_at, d.id LIMIT $2",
                now,
                limit,
            )
            nxt = await conn.fetchval(
                "SELECT MIN(next_at) FROM deliveries WHERE state = 'pending' AND next_at > $1",
                now,
            )
        return [delivery_row(r) for r in due], nxt

    async def update_delivery(
        self,
        row_id: int,
        *,
        state: str,
        attempts: int,
        at: float,
        next_at: float | None = None,
        error: str | None = None,
    ) -> None:
        await self._write(
            "UPDATE deliveries SET state = $1, attempts = $2, updated_at = $3,"
            " next_at = COALESCE($4, next_at), last_error = $5,"
            " delivered_at = CASE WHEN $1 = 'delivered' THEN $3 ELSE delivered_at END,"
            " claimed_by = NULL, lease_until = NULL WHERE id = $6",
            state,
            attempts,
            at,
            next_at,
            error,
            row_id,
        )

    async def deliveries_for(self, submission_id: str) -> list[DeliveryRow]:
        rows = await self.pool.fetch(
            "SELECT *, NULL AS submission FROM deliveries WHERE submission_id = $1 ORDER BY id",
            submission_id,
        )
        return [delivery_row(r) for r in rows]

    async def delivery_stats(self) -> tuple[dict[tuple[str, str], int], float | None]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state"
            )
            oldest = await conn.fetchval(
                "SELECT MIN(created_at) FROM deliveries WHERE state = 'pending'"
            )
        return {(r[0], r[1]): r[2] for r in rows}, oldest

    async def list_deliveries(
        self, states: tuple[str, ...] = ("pending", "dead")
    ) -> list[DeliveryRow]:
        rows = await self.pool.fetch(
            "SELECT *, NULL AS submission FROM deliveries WHERE state = ANY($1::text[])"
            " ORDER BY created_at, id",
            list(states),
        )
        return [delivery_row(r) for r in rows]

    async def requeue(self, now: float, delivery_id: int | None = None) -> int:
        """Due now, and every instance's delivery worker told (rare: in the transaction)."""
        sql = (
            "WITH q AS (UPDATE deliveries SET state = 'pending', attempts = 0, next_at = $1,"
            " updated_at = $1, claimed_by = NULL, lease_until = NULL WHERE {} RETURNING 1)"
            " SELECT COUNT(*), pg_notify($2, $3) FROM q"
        )
        notice = (NOTICE_DELIVERY, f"{self.instance} requeue")
        if delivery_id is None:
            n = await self.pool.fetchval(sql.format("state = 'dead'"), now, *notice)
        else:
            n = await self.pool.fetchval(
                sql.format("id = $4 AND state != 'delivered'"), now, *notice, delivery_id
            )
        return int(n)

    async def replay(self, submission_id: str, sink: str, key: str, now: float) -> int | None:
        new_id: int | None = await self.pool.fetchval(
            "WITH r AS (INSERT INTO deliveries (submission_id, sink, key, replay, next_at,"
            " created_at, updated_at) SELECT id, $2, $3, TRUE, $4, $4, $4 FROM submissions"
            " WHERE id = $1 RETURNING id)"
            " SELECT r.id FROM r, pg_notify($5, $6)",
            submission_id,
            sink,
            key,
            now,
            NOTICE_DELIVERY,
            f"{self.instance} {submission_id}",
        )
        return new_id
