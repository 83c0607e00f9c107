"""Storage: the ``Store`` interface and its SQLite and PostgreSQL implementations."""

from __future__ import annotations

from flowgate.store.base import Store


def open_store(
    database_url: str, *, sqlite_synchronous: str = "normal", worker_slots: int = 0
) -> Store:
    """The store for a ``FLOWGATE_DATABASE_URL``; opens no connection yet.

    ``sqlite_synchronous`` is ``FLOWGATE_SQLITE_SYNCHRONOUS`` (``normal`` or ``full``).
    PostgreSQL keeps a connection for each of ``worker_slots`` beside the API's ten: past its
    size, the pool opens a connection per checkout and closes it on return."""
    if database_url.startswith("sqlite"):
        from flowgate.store.sqlite import SqliteStore

        return SqliteStore(database_url, synchronous=sqlite_synchronous)
    from flowgate.store.postgres import PostgresStore

    return PostgresStore(database_url, pool_size=10 + worker_slots)
