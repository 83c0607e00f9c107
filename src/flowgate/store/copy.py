"""``flowgate db copy``: move a stopped SQLite store to PostgreSQL, table by table.

Rows are copied as they are (waiting runs keep their ``wake_at``; a lease of the stopped process
has lapsed, so its runs are taken over as after any crash), then the row counts are compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowgate.store import tables as t
from flowgate.store.sql import SqlStore

BATCH = 1000
#: Rows that a freshly started target may already hold (the default project, a bootstrap key).
_MERGED = ("projects", "api_keys")


class CopyRefused(Exception):
    """The target already holds workflows or runs; copying would mix two stores."""


@dataclass(frozen=True, slots=True)
class TableCount:
    table: str
    source: int
    target: int


async def copy_store(source: SqlStore, target: SqlStore) -> list[TableCount]:
    """Copy every table in dependency order; returns the counts on both sides afterwards."""
    for table in (t.workflows, t.runs):
        if await _count(target, table):
            raise CopyRefused(
                f"The target already has rows in {table.name}; give an empty database"
            )
    for table in t.metadata.sorted_tables:
        await _copy_table(source, target, table)
    return [
        TableCount(table.name, await _count(source, table), await _count(target, table))
        for table in t.metadata.sorted_tables
    ]


async def _count(store: SqlStore, table: sa.Table) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    return int(await store.read(lambda conn: conn.execute(query).scalar_one()))


def _fetch(conn: Connection, *, query: sa.Select[Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(query)]


async def _copy_table(source: SqlStore, target: SqlStore, table: sa.Table) -> None:
    key = list(table.primary_key.columns)
    offset = 0
    insert = target.insert_ignore(table) if table.name in _MERGED else table.insert()
    while True:
        query = table.select().order_by(*key).limit(BATCH).offset(offset)
        rows = await source.read(partial(_fetch, query=query))
        if not rows:
            return

        def write(conn: Connection, batch: list[dict[str, Any]] = rows) -> None:
            conn.execute(insert, batch)

        await target.write(write)
        offset += len(rows)
