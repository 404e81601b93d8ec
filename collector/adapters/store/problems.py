"""Why a store cannot be opened, each in one line that holds no password."""

from __future__ import annotations


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or refuses us."""


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer collector; this one must not touch it."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"schema version {found} is newer than this collector ({known}): upgrade collector"
        )
        self.found = found
        self.known = known
