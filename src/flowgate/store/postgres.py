"""The PostgreSQL store: many processes, ``FOR UPDATE SKIP LOCKED`` claims."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from flowgate.store import tables as t
from flowgate.store.base import Duplicate
from flowgate.store.sql import SqlStore, json_dumps

T = TypeVar("T")
_MIGRATION_LOCK_ID = 0x666C6F77  # "flow": one advisory lock id for every flowgate process


def async_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


class PostgresStore(SqlStore):
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.engine = create_async_engine(
            async_url(url),
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
        )

    async def close(self) -> None:
        await self.engine.dispose()

    async def _read(self, work: Callable[[Connection], T]) -> T:
        async with self.engine.connect() as conn:
            return await conn.run_sync(work)

    async def _write(self, work: Callable[[Connection], T]) -> T:
        try:
            async with self.engine.begin() as conn:
                return await conn.run_sync(work)
        except sa.exc.IntegrityError as exc:
            raise Duplicate(str(exc.orig)) from exc

    async def migrate(self, upgrade: Callable[[Connection], None]) -> None:
        """Run ``upgrade`` (Alembic) holding an advisory lock, so processes may start together."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text(f"SELECT pg_advisory_lock({_MIGRATION_LOCK_ID})"))
            await conn.commit()
            try:
                await conn.run_sync(upgrade)
                await conn.commit()
            finally:
                await conn.execute(sa.text(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK_ID})"))
                await conn.commit()

    def insert_ignore(self, table: sa.Table) -> Any:
        return postgresql.insert(table).on_conflict_do_nothing()

    def upsert(self, table: sa.Table, keys: Sequence[str]) -> Any:
        statement = postgresql.insert(table)
        others = {
            c.name: statement.excluded[c.name]
            for c in table.c
            if c.name not in keys and not c.primary_key
        }
        return statement.on_conflict_do_update(index_elements=list(keys), set_=others)

    def claim_statement(
        self, *, owner: str, limit: int, now: datetime, lease_until: datetime
    ) -> sa.Executable:
        r = t.runs.c
        candidates = (
            sa.select(r.id)
            .where(self.claimable(now))
            .order_by(r.priority.desc(), r.created_at, r.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        return (
            t.runs.update()
            .where(r.id.in_(candidates))
            .values(**self.claim_values(owner=owner, now=now, lease_until=lease_until))
            .returning(*t.runs.c)
        )
