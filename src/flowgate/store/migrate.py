"""Applying the Alembic migrations, safely from several processes at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowgate.store.base import Store

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

#: The newest revision under ``migrations/versions/``; a unit test pins it to Alembic's head, so
#: a new migration that forgets to move it fails there rather than being skipped at start-up.
HEAD_REVISION = "0012"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # deferred: Alembic costs ~80 ms of start-up imports

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def is_at_head(connection: Connection) -> bool:
    """Whether the schema is already at :data:`HEAD_REVISION`: one query, without loading
    Alembic and its scripts (what every ``serve`` of a migrated database would otherwise pay)."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return False
    versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
    return list(versions) == [HEAD_REVISION]


def _upgrade(connection: Connection) -> None:
    if is_at_head(connection):
        return
    from alembic import command  # deferred: only a database behind head needs Alembic

    command.upgrade(alembic_config(connection), "head")


async def upgrade_database(store: Store) -> None:
    """Bring the schema to the newest revision (PostgreSQL callers queue on an advisory lock)."""
    await store.migrate(_upgrade)
