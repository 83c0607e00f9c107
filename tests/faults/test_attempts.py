"""Attempts that tell the truth (DESIGN §7): an attempt lost with its worker is recorded as
``WORKER_LOST`` and retried without counting against ``retry.maxAttempts``; a run whose
execution keeps crashing ends ``RUN_CRASHED`` instead of being claimed forever."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from flowgate import ids
from flowgate.service.core import Services, build_services, running
from flowgate.service.examples import ADMIN
from flowgate.service.runs import StartRun, start_run
from flowgate.service.workflows import WriteWorkflow, create_workflow
from flowgate.settings import Settings
from flowgate.store.base import Lease, NewRun, RunProgress, RunRow, StepRunRow
from tests import functions


@pytest.fixture
async def svc(database_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(
        database_url=database_url,
        workers=0,
        lease_secs=5,
        data_dir=tmp_path / "data",
        python_modules="tests.functions",
        log_level="error",
    )
    async with running(build_services(settings), workers=0) as services:
        yield services


async def _start(svc: Services, steps: list[dict]) -> str:
    await create_workflow(
        svc,
        ADMIN,
        WriteWorkflow(body={"id": "wf_t", "name": "t", "status": "active", "steps": steps}),
    )
    started = await start_run(svc, ADMIN, StartRun(workflow="wf_t"))
    return started.run["id"]


async def _die_mid_step(svc: Services, run_id: str, step_id: str) -> None:
    """What a worker killed during a call leaves: the run claimed under a lease that has
    lapsed, and its attempt 1 committed as ``running``."""
    now = svc.clock.now()
    [claimed] = await svc.store.claim_runs(
        owner="dead-worker", limit=1, now=now, lease_until=now - timedelta(seconds=1)
    )
    running_attempt = StepRunRow(
        id=ids.new_id("stp"), run_id=run_id, step_id=step_id, position=0, attempt=1,
        status="running", output=None, error=None, started_at=now, completed_at=None,
    )  # fmt: skip
    lease = Lease(run_id=run_id, owner="dead-worker", epoch=claimed["lease_epoch"])
    assert await svc.store.save_progress(lease, RunProgress(steps=[running_attempt]))


async def test_attempt_lost_with_its_worker_is_recorded_and_not_counted(svc: Services) -> None:
    functions.CALLS.clear()
    steps = [
        {
            "id": "charge",
            "type": "python",
            "retry": {"maxAttempts": 1},
            "config": {"function": "add", "a": 1, "b": 2},
        }
    ]
    run_id = await _start(svc, steps)
    await _die_mid_step(svc, run_id, "charge")

    await svc.new_worker(1).run_until_idle()

    run = await svc.store.get_run(None, run_id)
    attempts = await svc.store.list_step_runs(run_id)
    assert run is not None
    assert run["status"] == "completed"
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "failed"), (2, "completed")]
    lost = attempts[0]["error"]
    assert lost is not None
    assert lost["code"] == "WORKER_LOST"
    assert attempts[0]["completed_at"] is not None
    assert attempts[1]["output"] == {"sum": 3, "key": f"{run_id}:charge"}
    assert [(run_id, "charge")] == functions.CALLS


async def test_execution_that_keeps_crashing_ends_run_crashed(svc: Services) -> None:
    now = svc.clock.now()
    corrupt = RunRow(
        id=ids.new_id("run"), project_id="prj_default", workflow_id="wf_gone",
        workflow_version=7, status="pending", input={}, env={}, output=None, error=None,
        source="api", parent_run_id=None, connection_id=None, priority=0,
        concurrency_key=None, queued_reason=None, lease_owner=None, lease_expires_at=None,
        lease_epoch=0, crash_count=0, step_env=None, origin_run_id=None, wake_at=None,
        created_at=now, started_at=None,
        completed_at=None,
    )  # fmt: skip
    await svc.store.insert_runs([NewRun(row=corrupt)])
    worker = svc.new_worker(1)

    for _ in range(5):
        await worker.run_until_idle()

    run = await svc.store.get_run(None, corrupt["id"])
    assert run is not None
    assert run["status"] == "failed"
    assert run["crash_count"] == 3
    assert run["lease_owner"] is None
    assert run["error"] == {
        "code": "RUN_CRASHED",
        "message": "LookupError: workflow wf_gone has no version 7",
        "stepId": None,
    }


async def test_step_output_with_nul_is_stored_with_a_replacement_character(
    svc: Services,
) -> None:
    functions.CALLS.clear()
    run_id = await _start(svc, [{"id": "s", "type": "python", "config": {"function": "with_nul"}}])

    await svc.new_worker(1).run_until_idle()

    run = await svc.store.get_run(None, run_id)
    assert run is not None
    assert run["status"] == "completed"
    assert run["output"] == {"text": "a\ufffdb"}
    assert [(run_id, "s")] == functions.CALLS


async def test_run_crashed_ends_the_attempt_it_left_running(svc: Services) -> None:
    run_id = await _start(
        svc, [{"id": "charge", "type": "python", "config": {"function": "add", "a": 1, "b": 2}}]
    )
    await _die_mid_step(svc, run_id, "charge")
    # The workflow version vanishes (a corrupt store): every execution of the run now crashes.
    await svc.store.write(
        lambda conn: conn.execute(
            sa.text("UPDATE runs SET workflow_version = 99, crash_count = 2 WHERE id = :id"),
            {"id": run_id},
        )
    )

    await svc.new_worker(1).run_until_idle()

    run = await svc.store.get_run(None, run_id)
    [attempt] = await svc.store.list_step_runs(run_id)
    assert run is not None
    assert run["status"] == "failed"
    assert attempt["status"] == "failed"
    assert attempt["error"] == run["error"]
    assert attempt["completed_at"] is not None
