"""A worker whose lease was taken over loses its writes instead of corrupting the run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from flowgate import ids
from flowgate.clock import Clock
from flowgate.store import open_store
from flowgate.store.base import Lease, NewRun, ProjectRow, RunProgress, RunRow, Store


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = open_store(database_url)
    now = Clock().now()
    await opened.ensure_project(
        ProjectRow(
            id="prj_default",
            org_id="org",
            name="d",
            run_quota_per_day=None,
            created_at=now,
            event_buffer_secs=None,
        )
    )
    yield opened
    await opened.close()


def _run() -> RunRow:
    now = Clock().now()
    return RunRow(
        id=ids.new_id("run"), project_id="prj_default", workflow_id="wf", workflow_version=1,
        status="pending", input={}, env={}, output=None, error=None, source="api",
        parent_run_id=None, connection_id=None, priority=0, concurrency_key=None,
        queued_reason=None, lease_owner=None, lease_expires_at=None, lease_epoch=0,
        crash_count=0, step_env=None, origin_run_id=None, wake_at=None, created_at=now,
        started_at=None,
        completed_at=None,
    )  # fmt: skip


async def test_stale_lease_holder_cannot_write_after_takeover(store: Store) -> None:
    run = _run()
    await store.insert_runs([NewRun(row=run)])
    now = Clock().now()
    [first] = await store.claim_runs(
        owner="A", limit=1, now=now, lease_until=now - timedelta(seconds=1)
    )
    [second] = await store.claim_runs(
        owner="B", limit=1, now=now, lease_until=now + timedelta(seconds=30)
    )
    stale = Lease(run_id=run["id"], owner="A", epoch=first["lease_epoch"])
    current = Lease(run_id=run["id"], owner="B", epoch=second["lease_epoch"])
    done = RunProgress(run_changes={"status": "completed", "completed_at": now})

    assert second["lease_epoch"] == first["lease_epoch"] + 1
    assert await store.save_progress(stale, done) is False
    assert await store.renew_lease(stale, lease_until=now + timedelta(seconds=30)) is False
    assert await store.save_progress(current, done) is True
    final = await store.get_run(None, run["id"])
    assert final is not None
    assert final["status"] == "completed"
    assert final["lease_owner"] is None


async def test_live_lease_is_not_claimed_twice(store: Store) -> None:
    await store.insert_runs([NewRun(row=_run())])
    now = Clock().now()
    until = now + timedelta(seconds=30)

    first = await store.claim_runs(owner="A", limit=5, now=now, lease_until=until)
    second = await store.claim_runs(owner="B", limit=5, now=now, lease_until=until)

    assert len(first) == 1
    assert second == []
