"""The SQLite store: one process, WAL, synchronous sqlite3 in threads.

Each store method runs whole in one thread hop: reads on a small pool of reader threads (WAL lets
them run beside the writer), writes on one writer thread, so writes never contend in-process and
``BEGIN IMMEDIATE`` keeps other processes (``flowgate db upgrade``) orderly.

Writes are group-committed: the writer thread takes every write waiting at that moment and runs
them in one transaction, each inside its own savepoint (a failing write rolls back alone). Each
caller learns its result only after the shared COMMIT, so durability is unchanged while a burst of
run starts shares one commit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from flowgate.store.base import Duplicate
from flowgate.store.sql import SqlStore, json_dumps
from flowgate.vault import create_private_file

T = TypeVar("T")
_READERS = 4
_BEGIN = "sqlite_begin"


_SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def _on_connect(synchronous: str) -> Callable[[Any, Any], None]:
    """Each new connection: WAL, ``synchronous`` (NORMAL: no fsync per commit, so a commit
    survives the process's death but not the machine's; FULL: it survives both), foreign keys,
    and a wait for the file lock instead of an immediate error."""
    pragma = _SYNCHRONOUS[synchronous.lower()]

    def configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={pragma}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return configure


def _private_file(url: sa.URL) -> Callable[..., None]:
    """Before SQLite opens the database, create it 0600 (its missing directories 0700): SQLite
    would create it with the umask's mode (0644), and gives the -wal and -shm files the mode of
    the database file."""
    database = url.database or ""
    plain_path = database not in ("", ":memory:") and "uri" not in url.query

    def prepare(*_args: Any) -> None:
        if plain_path:
            create_private_file(Path(database))

    return prepare


def _on_begin(conn: Connection) -> None:
    """Reads run without a transaction; writes take the write lock up front."""
    statement = conn.get_execution_options().get(_BEGIN, "BEGIN")
    if statement:
        conn.exec_driver_sql(statement)


@dataclass(slots=True)
class _WriteJob:
    work: Callable[[Connection], Any]
    future: asyncio.Future[Any]
    error: BaseException | None = None
    result: Any = None


def _deliver(jobs: list[_WriteJob]) -> None:
    for job in jobs:
        if job.future.cancelled():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


def sync_url(url: str) -> str:
    return url.replace("sqlite+aiosqlite://", "sqlite://", 1)


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, sa.exc.IntegrityError):
        return Duplicate(str(exc.orig))
    return exc


class SqliteStore(SqlStore):
    is_sqlite = True

    def __init__(self, url: str, *, synchronous: str = "normal") -> None:
        self.engine = sa.create_engine(
            sync_url(url),
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
            # Bound values are inputs, outputs and env: never in an error text or a log.
            hide_parameters=True,
            pool_size=_READERS + 1,
            max_overflow=0,
            connect_args={"check_same_thread": False},
        )
        sa.event.listen(self.engine, "do_connect", _private_file(self.engine.url))
        sa.event.listen(self.engine, "connect", _on_connect(synchronous))
        sa.event.listen(self.engine, "begin", _on_begin)
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="sqlite-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._pending: list[_WriteJob] = []
        self._pending_lock = threading.Lock()
        self._draining = False

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

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._run_read, work)

    async def write(self, work: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        job = _WriteJob(work, loop.create_future())
        with self._pending_lock:
            self._pending.append(job)
            start = not self._draining
            self._draining = True
        if start:
            self._writer.submit(self._drain, loop)
        return await job.future  # type: ignore[no-any-return]

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Writer thread: commit batches of waiting writes until none is left."""
        while True:
            with self._pending_lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._draining = False
                    return
            self._commit(batch)
            loop.call_soon_threadsafe(_deliver, batch)

    def _run_read(self, work: Callable[[Connection], T]) -> T:
        conn = self._connection().execution_options(**{_BEGIN: None})
        try:
            return work(conn)
        finally:
            conn.rollback()

    def _commit(self, batch: list[_WriteJob]) -> None:
        conn = self._connection().execution_options(**{_BEGIN: "BEGIN IMMEDIATE"})
        try:
            with conn.begin():
                for job in batch:
                    self._run_job(conn, job, alone=len(batch) == 1)
        except Exception as exc:
            for job in batch:
                job.error = job.error or _translate(exc)

    def _run_job(self, conn: Connection, job: _WriteJob, *, alone: bool) -> None:
        if alone:
            job.result = job.work(conn)
            return
        try:
            with conn.begin_nested():
                job.result = job.work(conn)
        except Exception as exc:
            job.error = _translate(exc)

    async def migrate(self, upgrade: Callable[[Connection], None]) -> None:
        """Run ``upgrade`` (Alembic) on the writer thread."""

        def work() -> None:
            with self.engine.connect() as conn:
                upgrade(conn)
                conn.commit()

        await asyncio.get_running_loop().run_in_executor(self._writer, work)

    def dialect_insert(self, table: sa.Table) -> Any:
        return sqlite.insert(table)
