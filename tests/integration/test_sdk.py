"""``flowgate.client.AsyncClient`` against a real server: typed results, waits, error classes,
and the ``source`` a client may claim for the runs it starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from flowgate.client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    InvalidStatus,
    NotFound,
    RateLimited,
    Run,
    StartedRun,
    Unauthorized,
    ValidationFailed,
)
from tests.conftest import ADMIN_KEY, ThreadedServer
from tests.integration.conftest import (
    ORDER_INPUT,
    ORDER_WORKFLOW,
    create_workflow,
    simple_workflow,
)


def napping_workflow(workflow_id: str, seconds: float) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": workflow_id,
        "status": "active",
        "steps": [
            {"id": "nap", "type": "sleep", "config": {"seconds": seconds}},
            {"id": "after", "type": "transform", "config": {"mapping": {"woke": True}}},
        ],
    }


@pytest.fixture
async def sdk(server: ThreadedServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, ADMIN_KEY) as client:
        yield client


async def _key_sdk(sdk: AsyncClient, url: str, **key: Any) -> AsyncClient:
    created = await sdk.create_key("sdk-test", **key)
    return AsyncClient(url, str(created["key"]), max_retries=0)


async def _start_three(sdk: AsyncClient, workflow: str) -> None:
    # A fixed one-minute window may turn between two starts: three always pass a limit of one.
    for _ in range(3):
        await sdk.run(workflow, {})


# -- run, wait ------------------------------------------------------------------------------------


async def test_async_run_wait_returns_completed_run_with_output(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, ORDER_WORKFLOW)

    run = await sdk.run("wf_order_total", ORDER_INPUT, env={"MODE": "x"}, wait=True)

    assert isinstance(run, Run)
    assert (run.status, run.output, run.error) == (
        "completed",
        {"subtotal": 25.5, "tax": 2.04, "total": 27.54},
        None,
    )
    assert (run.workflow_id, run.workflow_version, run.source, run.env) == (
        "wf_order_total",
        1,
        "api",
        {"MODE": "***"},
    )
    assert [(s.id, s.status, s.attempt) for s in run.steps] == [("calculate-total", "completed", 1)]
    assert run.completed_at is not None
    assert run.completed_at.tzinfo is not None
    assert run.raw["id"] == run.id


async def test_async_run_without_wait_then_wait_for_run_sleeping_workflow_completes(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, napping_workflow("wf_nap", 1))

    started = await sdk.run("wf_nap", {})
    run = await sdk.wait_for_run(started.run_id, timeout=20)

    assert isinstance(started, StartedRun)
    assert (started.workflow_id, started.replayed) == ("wf_nap", False)
    assert started.status in {"pending", "queued"}
    assert (run.id, run.status, run.output) == (started.run_id, "completed", {"woke": True})
    assert [s.status for s in run.steps] == ["completed", "completed"]


async def test_async_wait_for_run_timeout_passes_returns_unfinished_run(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, napping_workflow("wf_long_nap", 300))
    started = await sdk.run("wf_long_nap", {})

    run = await sdk.wait_for_run(started.run_id, timeout=0.5)

    assert not run.ended
    assert (await sdk.cancel_run(started.run_id)).status == "canceled"


async def test_async_follow_run_yields_each_change_until_the_run_ends(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, napping_workflow("wf_followed", 0.5))
    started = await sdk.run("wf_followed", {})

    seen = [run async for run in sdk.follow_run(started.run_id)]

    assert seen, "the stream sent no run"
    assert all(isinstance(run, Run) and run.id == started.run_id for run in seen)
    assert (seen[-1].status, seen[-1].output) == ("completed", {"woke": True})
    assert not any(run.ended for run in seen[:-1])


async def test_async_follow_run_of_unknown_run_raises_not_found(sdk: AsyncClient) -> None:
    with pytest.raises(NotFound, match="Run not found"):
        async for _run in sdk.follow_run("run_does_not_exist"):
            pass


def test_sync_follow_run_ends_with_the_finished_run(server: ThreadedServer) -> None:
    with Client(server.url, ADMIN_KEY) as sync:
        sync.create_workflow(napping_workflow("wf_followed_sync", 0.2))
        started = sync.run("wf_followed_sync", {})

        last = list(sync.follow_run(started.run_id))[-1]

    assert (last.status, last.output) == ("completed", {"woke": True})


async def test_async_run_same_idempotency_key_returns_same_run_replayed(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_once"))

    first = await sdk.run("wf_once", {"n": 1}, idempotency_key="k1")
    second = await sdk.run("wf_once", {"n": 1}, idempotency_key="k1")

    assert second.run_id == first.run_id
    assert (first.replayed, second.replayed) == (False, True)


async def test_async_replay_and_rerun_start_new_runs_with_their_source(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_again"))
    original = await sdk.run("wf_again", {"n": 2}, wait=10)

    replayed = await sdk.replay(original.id)
    rerun = await sdk.rerun(original.id)

    for started, source in ((replayed, "replay"), (rerun, "rerun")):
        assert started.run_id != original.id
        run = await sdk.wait_for_run(started.run_id, timeout=10)
        assert (run.source, run.input, run.workflow_id) == (source, {"n": 2}, "wf_again")


# -- errors mapped to their classes --------------------------------------------------------------


async def test_async_run_unknown_workflow_raises_not_found(sdk: AsyncClient) -> None:
    with pytest.raises(NotFound) as caught:
        await sdk.run("wf_missing", {})

    assert (caught.value.status, caught.value.code, caught.value.message) == (
        404,
        "NOT_FOUND",
        "Workflow not found",
    )
    assert caught.value.request_id


async def test_async_run_input_failing_schema_raises_validation_failed(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, ORDER_WORKFLOW)

    with pytest.raises(ValidationFailed) as caught:
        await sdk.run("wf_order_total", {"items": []})

    assert (caught.value.status, caught.value.message, caught.value.details) == (
        400,
        "Input validation failed",
        [{"path": ["customerId"], "message": "Required"}],
    )


async def test_async_run_draft_workflow_raises_invalid_status(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_draft", status="draft"))

    with pytest.raises(InvalidStatus) as caught:
        await sdk.run("wf_draft", {})

    assert caught.value.message == "Workflow must be active to run. Current status: draft"


async def test_async_run_reused_key_other_input_raises_idempotency_key_reused(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_keyed"))
    first = await sdk.run("wf_keyed", {"n": 1}, idempotency_key="k1")

    with pytest.raises(IdempotencyKeyReused) as caught:
        await sdk.run("wf_keyed", {"n": 2}, idempotency_key="k1")

    assert caught.value.status == 409
    assert caught.value.details == {
        "runId": first.run_id,
        "differences": [{"path": ["n"], "stored": 1, "sent": 2}],
    }


async def test_async_cancel_finished_run_raises_conflict(
    sdk: AsyncClient, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_quick"))
    run = await sdk.run("wf_quick", {"n": 1}, wait=10)

    with pytest.raises(Conflict) as caught:
        await sdk.cancel_run(run.id)

    assert caught.value.message == "Run has already ended with status completed"


async def test_async_unknown_key_raises_unauthorized(server: ThreadedServer) -> None:
    async with AsyncClient(server.url, "fgk_not_a_key") as stranger:
        with pytest.raises(Unauthorized) as caught:
            await stranger.get_run("run_x")

    assert caught.value.status == 401


async def test_async_key_lacking_scope_raises_forbidden(
    sdk: AsyncClient, server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_scoped"))
    reader = await _key_sdk(sdk, server.url, scopes=["runs:read"])

    async with reader:
        with pytest.raises(Forbidden) as caught:
            await reader.run("wf_scoped", {})

    assert caught.value.status == 403


async def test_async_key_over_its_rate_limit_raises_rate_limited_with_retry_after(
    sdk: AsyncClient, server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_limited"))
    limited = await _key_sdk(sdk, server.url, scopes=["workflows:execute"], rate_limit_per_minute=1)

    async with limited:
        with pytest.raises(RateLimited) as caught:
            await _start_three(limited, "wf_limited")

    assert (caught.value.status, caught.value.code) == (429, "RATE_LIMITED")
    assert caught.value.message == "Rate limit exceeded. Limit: 1 requests per minute."
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 60


# -- source -------------------------------------------------------------------------------------


async def test_async_client_source_cli_records_run_source_cli(
    server: ThreadedServer, client: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_sourced"))

    async with AsyncClient(server.url, ADMIN_KEY, source="cli") as cli_sdk:
        run = await cli_sdk.run("wf_sourced", {"n": 1}, wait=10)

    assert run.source == "cli"


@pytest.mark.parametrize("value", ["webhook", "schedule", "CLI", ""])
async def test_start_run_source_header_other_value_returns_400(
    client: httpx.AsyncClient, value: str
) -> None:
    await create_workflow(client, simple_workflow("wf_sourced"))

    response = await client.post(
        "/api/v1/workflows/wf_sourced/run", json={}, headers={"x-flowgate-source": value}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["details"][0]["path"]) == (
        "INVALID_REQUEST",
        ["x-flowgate-source"],
    )
    runs = await client.get("/api/v1/runs", params={"workflowId": "wf_sourced"})
    assert runs.json()["data"] == []
