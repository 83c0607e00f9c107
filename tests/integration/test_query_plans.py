"""The list queries read an index, never the whole runs table sorted afterwards (issue 12: the
runs list must stay fast at 1,000,000 runs). Each query is captured as the store runs it, then
``EXPLAIN``ed on the same database: SQLite's plan names the index and has no temporary B-tree for
the ``ORDER BY``; PostgreSQL's (sequential scans off, as a large table would make them) has an
index scan and no sort."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from flowgate.store import open_store
from flowgate.store.base import Page, RunFilter, Store

Captured = list[tuple[str, Any]]


def _capture(store: Any, captured: Captured) -> None:
    engine = store.engine.sync_engine if hasattr(store.engine, "sync_engine") else store.engine

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", before)


async def _plan(store: Any, statement: str, parameters: Any) -> str:
    async def explain_postgresql() -> str:
        async with store.engine.connect() as conn:
            await conn.exec_driver_sql("SET enable_seqscan = off")
            raw = await conn.get_raw_connection()
            rows = await raw.driver_connection.fetch(f"EXPLAIN {statement}", *parameters)
            return "\n".join(row[0] for row in rows)

    if store.is_sqlite:
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            return "\n".join(str(row[-1]) for row in rows)
    return await explain_postgresql()


#: A list, the index it must read on SQLite, and whether its rows may be sorted after reading
#: (a run's children are few: they are found by parent, then sorted).
LISTS: dict[str, tuple[Callable[[Store], Awaitable[object]], str, bool]] = {
    "newest runs": (
        lambda s: s.list_runs("prj_default", RunFilter(), Page(limit=51)),
        "ix_runs_project_created",
        False,
    ),
    "a workflow's runs": (
        lambda s: s.list_runs("prj_default", RunFilter(workflow_id="wf_a"), Page(limit=51)),
        "ix_runs_project_workflow_created",
        False,
    ),
    "runs with one status": (
        lambda s: s.list_runs("prj_default", RunFilter(statuses=["failed"]), Page(limit=51)),
        "ix_runs_project_status_created",
        False,
    ),
    "counts per status": (
        lambda s: s.count_runs_by_status("prj_default", RunFilter()),
        "ix_runs_project_status_created",
        False,
    ),
    "a run's children": (
        lambda s: s.list_child_runs("prj_default", "run_parent", limit=50),
        "ix_runs_parent",
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(LISTS))
async def test_list_query_reads_an_index_without_sorting_the_table(
    database_url: str, name: str
) -> None:
    listing, index, sorted_after = LISTS[name]
    store = open_store(database_url)
    captured: Captured = []
    try:
        _capture(store, captured)
        await listing(store)
        assert captured, "the store ran no SELECT"
        plan = await _plan(store, *captured[-1])
    finally:
        await store.close()

    if store.is_sqlite:
        assert f"INDEX {index} " in plan, plan
        assert "SCAN runs\n" not in plan + "\n", plan
        assert sorted_after or "TEMP B-TREE FOR ORDER BY" not in plan, plan
    else:
        assert "Index" in plan, plan
        assert "Seq Scan on runs" not in plan, plan
        assert sorted_after or "Sort" not in plan.replace("Sort Key", ""), plan
