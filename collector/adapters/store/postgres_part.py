"""What PostgresStore's halves (Claims, Deliveries) use of the store they are part of."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg


class PostgresPart:
    """A half of PostgresStore: `instance`, `pool` and `_write` are the store's."""

    instance: str

    @property
    def pool(self) -> asyncpg.Pool:
        raise NotImplementedError

    async def _write(self, sql: str, *args: Any) -> str:
        raise NotImplementedError
