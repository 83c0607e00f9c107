"""Applying the Alembic migrations, safely from several processes at once."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from flowgate.store.base import Store
from flowgate.store.sql import SqlStore

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 0x666C6F77  # "flow": one advisory lock id for every flowgate process


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def upgrade_database(store: Store) -> None:
    """Bring the schema to the newest revision; PostgreSQL callers queue on an advisory lock."""
    assert isinstance(store, SqlStore)  # noqa: S101 - every store is a SqlStore today
    async with store.engine.connect() as conn:
        if not store.is_sqlite:
            await conn.execute(sa.text(f"SELECT pg_advisory_lock({_MIGRATION_LOCK_ID})"))
            await conn.commit()
        try:
            await conn.run_sync(_upgrade)
            await conn.commit()
        finally:
            if not store.is_sqlite:
                await conn.execute(sa.text(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK_ID})"))
                await conn.commit()
