"""The PostgreSQL store: many processes, ``FOR UPDATE SKIP LOCKED`` claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from flowgate.store import tables as t
from flowgate.store.base import RunRow
from flowgate.store.sql import SqlStore, json_dumps


def async_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


class PostgresStore(SqlStore):
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        engine = create_async_engine(
            async_url(url),
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
        )
        super().__init__(engine)

    def insert_ignore(self, table: sa.Table) -> Any:
        return postgresql.insert(table).on_conflict_do_nothing()

    async def claim_runs(
        self, *, owner: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[RunRow]:
        r = t.runs.c
        candidates = (
            sa.select(r.id)
            .where(self.claimable(now))
            .order_by(r.priority.desc(), r.created_at, r.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        query = (
            t.runs.update()
            .where(r.id.in_(candidates))
            .values(**self.claim_values(owner=owner, now=now, lease_until=lease_until))
            .returning(*t.runs.c)
        )
        async with self.write() as conn:
            rows = (await conn.execute(query)).all()
        return [cast(RunRow, dict(row._mapping)) for row in rows]
