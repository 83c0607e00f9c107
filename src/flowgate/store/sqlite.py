"""The SQLite store: one process, WAL, writes serialized in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from flowgate.store import tables as t
from flowgate.store.base import RunRow
from flowgate.store.sql import SqlStore, json_dumps


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def async_url(url: str) -> str:
    return url.replace("sqlite://", "sqlite+aiosqlite://", 1) if "+" not in url[:10] else url


class SqliteStore(SqlStore):
    is_sqlite = True

    def __init__(self, url: str) -> None:
        engine = create_async_engine(
            async_url(url),
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
            pool_size=8,
            max_overflow=8,
        )
        sa.event.listen(engine.sync_engine, "connect", _on_connect)
        sa.event.listen(engine.sync_engine, "begin", _on_begin)
        super().__init__(engine)
        self._write_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self._write_lock, super().write() as conn:
            yield conn

    def insert_ignore(self, table: sa.Table) -> Any:
        return sqlite.insert(table).on_conflict_do_nothing()

    async def claim_runs(
        self, *, owner: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[RunRow]:
        r = t.runs.c
        candidates = (
            sa.select(r.id)
            .where(self.claimable(now))
            .order_by(r.priority.desc(), r.created_at, r.id)
            .limit(limit)
            .scalar_subquery()
        )
        query = (
            t.runs.update()
            .where(r.id.in_(candidates), self.claimable(now))
            .values(**self.claim_values(owner=owner, now=now, lease_until=lease_until))
            .returning(*t.runs.c)
        )
        async with self.write() as conn:
            rows = (await conn.execute(query)).all()
        return [cast(RunRow, dict(row._mapping)) for row in rows]
