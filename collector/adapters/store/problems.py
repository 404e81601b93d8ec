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


READY_TIMEOUT_SECONDS = 2.0  # how long a readiness check waits for the store


def schema_problem(found: int, known: int) -> tuple[str, str] | None:
    """Why a store whose schema is version `found` is not ready for this code (`known`):
    (code, message) for SessionStore.ready(), or None when they match."""
    if found < known:
        return (
            "schema_outdated",
            f"the database's schema is version {found}, behind this collector's ({known}):"
            " run `collector db upgrade`, or restart an instance (serve applies it)",
        )
    if found > known:
        return (
            "schema_too_new",
            f"the database's schema is version {found}, newer than this collector's"
            f" ({known}): a newer collector migrated it; upgrade this instance",
        )
    return None
