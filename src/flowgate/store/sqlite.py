"""The SQLite store: one process, WAL, synchronous sqlite3 in threads.

Each store method runs whole in one thread hop: reads on a small pool of reader threads (WAL lets
them run beside the writer), writes on one writer thread, so writes never contend in-process and
``BEGIN IMMEDIATE`` keeps other processes (``flowgate db upgrade``) orderly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from flowgate.store import tables as t
from flowgate.store.base import Duplicate
from flowgate.store.sql import SqlStore, json_dumps

T = TypeVar("T")
_READERS = 4
_BEGIN = "sqlite_begin"


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _on_begin(conn: Connection) -> None:
    """Reads run without a transaction; writes take the write lock up front."""
    statement = conn.get_execution_options().get(_BEGIN, "BEGIN")
    if statement:
        conn.exec_driver_sql(statement)


def sync_url(url: str) -> str:
    return url.replace("sqlite+aiosqlite://", "sqlite://", 1)


class SqliteStore(SqlStore):
    is_sqlite = True

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(
            sync_url(url),
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
            pool_size=_READERS + 1,
            max_overflow=0,
            connect_args={"check_same_thread": False},
        )
        sa.event.listen(self.engine, "connect", _on_connect)
        sa.event.listen(self.engine, "begin", _on_begin)
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="sqlite-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        self._local = threading.local()
        self._opened: list[Connection] = []

    async def close(self) -> None:
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        for conn in self._opened:
            conn.close()
        self.engine.dispose()

    def _connection(self) -> Connection:
        """This thread's own connection, opened once: checkouts cost more than the queries."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.engine.connect()
            self._local.conn = conn
            self._opened.append(conn)
        return conn

    async def _read(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._run_read, work)

    async def _write(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._run_write, work)

    def _run_read(self, work: Callable[[Connection], T]) -> T:
        conn = self._connection().execution_options(**{_BEGIN: None})
        try:
            return work(conn)
        finally:
            conn.rollback()

    def _run_write(self, work: Callable[[Connection], T]) -> T:
        conn = self._connection().execution_options(**{_BEGIN: "BEGIN IMMEDIATE"})
        try:
            with conn.begin():
                return work(conn)
        except sa.exc.IntegrityError as exc:
            raise Duplicate(str(exc.orig)) from exc

    async def migrate(self, upgrade: Callable[[Connection], None]) -> None:
        """Run ``upgrade`` (Alembic) on the writer thread."""

        def work() -> None:
            with self.engine.connect() as conn:
                upgrade(conn)
                conn.commit()

        await asyncio.get_running_loop().run_in_executor(self._writer, work)

    def insert_ignore(self, table: sa.Table) -> Any:
        return sqlite.insert(table).on_conflict_do_nothing()

    def claim_statement(
        self, *, owner: str, limit: int, now: datetime, lease_until: datetime
    ) -> sa.Executable:
        r = t.runs.c
        candidates = (
            sa.select(r.id)
            .where(self.claimable(now))
            .order_by(r.priority.desc(), r.created_at, r.id)
            .limit(limit)
            .scalar_subquery()
        )
        return (
            t.runs.update()
            .where(r.id.in_(candidates), self.claimable(now))
            .values(**self.claim_values(owner=owner, now=now, lease_until=lease_until))
            .returning(*t.runs.c)
        )
