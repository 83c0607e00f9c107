"""Storage: the ``Store`` interface and its SQLite and PostgreSQL implementations."""

from __future__ import annotations

from flowgate.store.base import Store


def open_store(database_url: str, *, sqlite_synchronous: str = "normal") -> Store:
    """The store for a ``FLOWGATE_DATABASE_URL``; opens no connection yet.

    ``sqlite_synchronous`` is ``FLOWGATE_SQLITE_SYNCHRONOUS`` (``normal`` or ``full``)."""
    if database_url.startswith("sqlite"):
        from flowgate.store.sqlite import SqliteStore

        return SqliteStore(database_url, synchronous=sqlite_synchronous)
    from flowgate.store.postgres import PostgresStore

    return PostgresStore(database_url)
