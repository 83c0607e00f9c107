"""The PostgreSQL store: many processes, ``FOR UPDATE SKIP LOCKED`` claims, LISTEN/NOTIFY.

New work, timers, run changes and endings, and event trigger changes are announced with
``pg_notify`` inside the committing transaction (ids only; PostgreSQL folds identical
notifications of one transaction), and each process keeps one dedicated connection listening,
which it re-opens after an outage and then treats as "anything may have happened": workers
rescan, waiters and streams re-read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from flowgate.store.base import Duplicate
from flowgate.store.events import EVENT_CHANNEL, WORK_CHANNEL
from flowgate.store.sql import RUN_CHANGED_CHANNEL, RUN_DONE_CHANNEL, SqlStore, json_dumps

log = logging.getLogger(__name__)
T = TypeVar("T")
_RECONNECT_SECS = 1.0
_MIGRATION_LOCK_ID = 0x666C6F77  # "flow": one advisory lock id for every flowgate process


def plain_url(url: str) -> str:
    """The URL as libpq and asyncpg spell it."""
    return "postgresql://" + async_url(url).removeprefix("postgresql+asyncpg://")


def async_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


class PostgresStore(SqlStore):
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self._dsn = plain_url(url)
        self.engine = create_async_engine(
            async_url(url),
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
            # Bound values are inputs, outputs and env: never in an error text or a log.
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=10,
            pool_pre_ping=True,
        )

    async def close(self) -> None:
        await self.engine.dispose()

    async def read(self, work: Callable[[Connection], T]) -> T:
        async with self.engine.connect() as conn:
            return await conn.run_sync(work)

    async def write(self, work: Callable[[Connection], T]) -> T:
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

    def serialize(self, conn: Connection, name: str) -> None:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(name))))

    def announce(self, conn: Connection, channel: str, payload: str = "") -> None:
        conn.execute(sa.select(sa.func.pg_notify(channel, payload)))

    async def listen(
        self,
        *,
        on_work: Callable[[], None],
        on_run_done: Callable[[str], None],
        on_run_changed: Callable[[str], None],
        on_event_changed: Callable[[str], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        # asyncpg calls a listener as (connection, pid, channel, payload).
        channels: dict[str, Callable[..., None]] = {
            WORK_CHANNEL: lambda *_args: on_work(),
            RUN_DONE_CHANNEL: lambda *args: on_run_done(str(args[3])),
            RUN_CHANGED_CHANNEL: lambda *args: on_run_changed(str(args[3])),
            EVENT_CHANNEL: lambda *args: on_event_changed(str(args[3])),
        }
        while True:
            try:
                await self._listen_once(channels, on_reconnect)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("notify.listener_lost", extra={"error": str(exc)})
            await asyncio.sleep(_RECONNECT_SECS)

    async def _listen_once(
        self, channels: dict[str, Callable[..., None]], on_reconnect: Callable[[], None]
    ) -> None:
        lost = asyncio.Event()
        conn = await asyncpg.connect(self._dsn)
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            for channel, callback in channels.items():
                await conn.add_listener(channel, callback)
            on_reconnect()
            await lost.wait()
        finally:
            if not conn.is_closed():
                await conn.close()

    def dialect_insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table)
