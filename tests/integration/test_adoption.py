"""A run started in a process whose worker has a free slot is written already claimed by that
worker (no claim statement, no wake-up); when the worker is busy, or runs wait to be claimed, the
run is written pending and claimed as before. Either way nothing accepted is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from flowgate.service.core import Services, build_services, running
from flowgate.service.examples import ADMIN
from flowgate.service.runs import StartRun, start_run, start_run_and_wait
from flowgate.service.workflows import WriteWorkflow
from flowgate.service.workflows import create_workflow as create_workflow_svc
from flowgate.settings import Settings
from flowgate.store.base import RunRow
from tests import functions
from tests.conftest import wait_until
from tests.integration.conftest import simple_workflow

GATED = {
    "id": "wf_gated",
    "name": "gated",
    "status": "active",
    "steps": [{"id": "gate", "type": "python", "config": {"function": "wait_for_gate"}}],
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "workers": 1,
            "lease_secs": 1,
            "poll_interval_secs": 0.2,
            "python_modules": "tests.functions",
            "data_dir": tmp_path / "data",
            "log_level": "error",
        }
        return Settings(**{**values, **overrides})

    return make


def _quiet_services(settings: Settings) -> Services:
    """Services whose worker claims only when told of work (no safety re-scans), and which
    say when PostgreSQL's listener is connected (its first connection wakes the worker)."""
    services = build_services(settings.model_copy(update={"poll_interval_secs": 60}))
    listening = services.notifier.wake_everything

    def connected() -> None:
        LISTENING[id(services)] = services
        listening()

    services.notifier.wake_everything = connected  # type: ignore[method-assign]
    if services.store.is_sqlite:  # no listener
        LISTENING[id(services)] = services
    return services


#: Services whose listener is connected, by id (held, so no later instance reuses the id).
LISTENING: dict[int, Services] = {}


@pytest.fixture
async def svc(settings: Callable[..., Settings]) -> AsyncIterator[Services]:
    async with running(_quiet_services(settings()), workers=1) as services:
        await create_workflow_svc(services, ADMIN, WriteWorkflow(body=simple_workflow("wf_a")))
        await create_workflow_svc(services, ADMIN, WriteWorkflow(body=GATED))
        yield services


@pytest.fixture
def claims(svc: Services, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many runs each claim statement of ``svc``'s worker took, from now on."""
    taken: list[int] = []
    claim_runs = svc.store.claim_runs

    async def counted(**kwargs: Any) -> list[RunRow]:
        runs = await claim_runs(**kwargs)
        taken.append(len(runs))
        return runs

    monkeypatch.setattr(svc.store, "claim_runs", counted)
    return taken


async def _settled(svc: Services) -> None:
    """Wait until the listener is up and the worker has claimed what there was."""
    worker = svc.local_worker
    assert worker is not None
    await wait_until(lambda: LISTENING.get(id(svc)) is svc and worker.can_adopt)


async def _ended(svc: Services, run_id: str) -> RunRow:
    async def ended() -> RunRow | None:
        run = await svc.store.get_run(ADMIN.project_id, run_id)
        return run if run is not None and run["status"] in {"completed", "failed"} else None

    found: RunRow = await wait_until(ended)
    return found


async def test_a_run_started_beside_an_idle_worker_is_never_claimed(
    svc: Services, claims: list[int]
) -> None:
    await _settled(svc)

    started = await start_run(svc, ADMIN, StartRun(workflow="wf_a", input={"n": 1}))
    run = await _ended(svc, started.run["id"])

    assert started.run["status"] == "pending"  # as the 201 says: accepted, not held back
    assert (run["status"], run["lease_epoch"], run["started_at"] is not None) == (
        "completed",
        1,
        True,
    )
    assert sum(claims) == 0


async def test_a_run_started_while_the_worker_is_busy_waits_pending_and_is_claimed(
    svc: Services, claims: list[int]
) -> None:
    functions.GATE.clear()
    functions.ENTERED.clear()
    await _settled(svc)
    busy = await start_run(svc, ADMIN, StartRun(workflow="wf_gated"))
    await asyncio.to_thread(functions.ENTERED.wait, 10)

    waiting = await start_run(svc, ADMIN, StartRun(workflow="wf_a", input={"n": 2}))
    stored = await svc.store.get_run(ADMIN.project_id, waiting.run["id"])
    functions.GATE.set()

    assert stored is not None
    assert (stored["status"], stored["lease_owner"]) == ("pending", None)
    assert (await _ended(svc, busy.run["id"]))["status"] == "completed"
    assert (await _ended(svc, waiting.run["id"]))["status"] == "completed"
    assert sum(claims) == 1


async def test_an_idempotent_resend_gives_its_slot_back(svc: Services) -> None:
    await _settled(svc)
    first = await start_run(svc, ADMIN, StartRun(workflow="wf_a", idempotency_key="k1"))
    await _ended(svc, first.run["id"])
    await _settled(svc)  # the slot is free again: the resend reserves it

    again = await start_run(svc, ADMIN, StartRun(workflow="wf_a", idempotency_key="k1"))

    assert (again.replayed, again.run["id"]) == (True, first.run["id"])
    assert svc.local_worker is not None
    assert svc.local_worker.free_slots == 1


async def test_a_run_adopted_by_a_process_that_dies_is_taken_over(
    settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _quiet_services(settings())

    async def dies_before_executing(run: RunRow) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(first.executor, "execute", dies_before_executing)
    async with running(first, workers=1):
        await create_workflow_svc(first, ADMIN, WriteWorkflow(body=simple_workflow("wf_a")))
        await _settled(first)
        started = await start_run(first, ADMIN, StartRun(workflow="wf_a", input={"n": 3}))
    left = await _stored(settings, started.run["id"])
    assert (left["status"], left["lease_epoch"]) == ("running", 1)

    async with running(build_services(settings()), workers=1) as second:
        run = await _ended(second, started.run["id"])

    assert (run["status"], run["output"], run["lease_epoch"]) == ("completed", {"n": 3}, 2)


async def _stored(settings: Callable[..., Settings], run_id: str) -> RunRow:
    async with running(build_services(settings()), workers=0) as reader:
        run = await reader.store.get_run(ADMIN.project_id, run_id)
    assert run is not None
    return run


async def test_a_run_started_and_waited_for_is_read_once_when_it_ends(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    read = svc.store.get_run_with_steps

    async def counted(project_id: str, run_id: str) -> Any:
        found = await read(project_id, run_id)
        reads.append(found[0]["status"] if found else "missing")
        return found

    monkeypatch.setattr(svc.store, "get_run_with_steps", counted)
    await _settled(svc)

    started, detail = await start_run_and_wait(svc, ADMIN, StartRun(workflow="wf_a"), 30)
    again, _ = await start_run_and_wait(
        svc, ADMIN, StartRun(workflow="wf_a", idempotency_key="k2"), 30
    )
    same, finished = await start_run_and_wait(
        svc, ADMIN, StartRun(workflow="wf_a", idempotency_key="k2"), 30
    )

    assert (started.replayed, detail.run["status"]) == (False, "completed")
    assert (same.replayed, same.run["id"], finished.run["status"]) == (
        True,
        again.run["id"],
        "completed",
    )
    # One read for each new run (when it ended); the idempotent resend's run had ended: one.
    assert reads == ["completed", "completed", "completed"]
