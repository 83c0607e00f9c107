"""``GET /metrics`` (DESIGN §3): Prometheus text with run, step, queue, event-trigger, HTTP and
lease series; labels are bounded (route templates, never a run id)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from flowgate.api.app import create_app
from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.integration.conftest import create_workflow

#: What ``ids.new_id("run")`` produces.
RUN_ID = re.compile(r"run_[0-9a-z]{26}")

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers={"x-api-key": ""})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def steps_workflow(workflow_id: str, step: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": workflow_id, "name": workflow_id, "status": "active", "steps": [step], **extra}


async def run_and_wait(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/workflows/{workflow_id}/run", json={"input": {}}, headers={"x-api-wait": "true"}
    )
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["data"]
    return run


async def test_metrics_after_a_completed_and_a_failed_run_count_runs_steps_and_requests(
    client: httpx.AsyncClient,
) -> None:
    # Counters are per process (the test process): unique workflow ids and deltas keep this
    # test exact whatever ran before it.
    ok, bad = f"wf_ok_{uuid.uuid4().hex[:8]}", f"wf_bad_{uuid.uuid4().hex[:8]}"
    await create_workflow(
        client, steps_workflow(ok, {"id": "t", "type": "transform", "config": {"mapping": 1}})
    )
    await create_workflow(
        client, steps_workflow(bad, {"id": "f", "type": "fail", "config": {"message": "no"}})
    )
    before = await scrape(client)

    completed = await run_and_wait(client, ok)
    failed = await run_and_wait(client, bad)
    fetched = await client.get(f"/api/v1/runs/{completed['id']}")
    missing = await client.get("/api/v1/runs/run_does_not_exist")
    after = await scrape(client)

    assert (completed["status"], failed["status"], fetched.status_code) == (
        "completed",
        "failed",
        200,
    )
    assert missing.status_code == 404

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "flowgate_runs_started_total", workflow=ok, source="api") == 1
    assert value(after, "flowgate_runs_started_total", workflow=bad, source="api") == 1
    assert value(after, "flowgate_runs_finished_total", workflow=ok, status="completed") == 1
    assert value(after, "flowgate_runs_finished_total", workflow=bad, status="failed") == 1
    assert value(after, "flowgate_runs_finished_total", workflow=ok, status="failed") == 0
    step = "flowgate_step_duration_seconds_count"
    assert delta(step, step_type="transform", status="completed") == 1
    assert delta(step, step_type="fail", status="failed") == 1
    assert (
        delta("flowgate_step_duration_seconds_bucket", step_type="fail", status="failed", le="+Inf")
        == 1
    )
    http = "flowgate_http_request_duration_seconds_count"
    run_route = "/api/v1/workflows/{workflow_id}/run"
    assert delta(http, method="POST", route=run_route, status="2xx") == 2
    assert delta(http, method="GET", route="/api/v1/runs/{run_id}", status="2xx") == 1
    assert delta(http, method="GET", route="/api/v1/runs/{run_id}", status="4xx") == 1
    assert delta(http, method="GET", route="/metrics", status="2xx") == 1
    # The gauges come from the database: nothing queued, nothing waiting.
    assert value(after, "flowgate_queue_depth", status="queued") == 0
    assert value(after, "flowgate_queue_depth", status="pending") == 0
    assert value(after, "flowgate_event_triggers_waiting") == 0
    run_ids = {completed["id"], failed["id"], "run_does_not_exist"}
    label_values = {v for _name, labels in after for _k, v in labels}
    assert not label_values & run_ids
    # No label holds any run id (the step type ``run_workflow`` is not one).
    assert not any(RUN_ID.search(v) for v in label_values), sorted(label_values)


async def test_metrics_queued_run_and_waiting_event_show_in_the_database_gauges(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = f"wf_q_{uuid.uuid4().hex[:8]}"
    await create_workflow(
        client,
        steps_workflow(
            workflow_id,
            {
                "id": "wait",
                "type": "wait_for_event",
                "config": {"eventKey": "k-{{input.n}}", "timeoutSecs": 3600},
            },
            concurrency={"limit": 1},
        ),
    )
    url = f"/api/v1/workflows/{workflow_id}/run"
    first = (await client.post(url, json={"input": {"n": 1}})).json()["data"]
    second = (await client.post(url, json={"input": {"n": 2}})).json()["data"]

    async def first_waits() -> str:
        run = (await client.get(f"/api/v1/runs/{first['runId']}")).json()["data"]
        return str(run["status"]) if run["status"] == "waiting" else ""

    await wait_until(first_waits)
    samples = await scrape(client)

    assert (first["status"], second["status"]) == ("pending", "queued")
    assert value(samples, "flowgate_queue_depth", status="queued") == 1
    assert value(samples, "flowgate_queue_depth", status="pending") == 0
    assert 0 <= value(samples, "flowgate_queue_oldest_age_seconds", status="queued") < 60
    assert value(samples, "flowgate_queue_oldest_age_seconds", status="pending") == 0
    assert value(samples, "flowgate_event_triggers_waiting") == 1
    assert value(samples, "flowgate_runs_started_total", workflow=workflow_id, source="api") == 2
    label_values = {v for _name, labels in samples for _k, v in labels}
    assert first["runId"] not in label_values
    assert second["runId"] not in label_values


async def test_metrics_needs_no_api_key(server: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        response = await anonymous.get("/metrics")

    assert response.status_code == 200
    assert "# TYPE flowgate_runs_started_total counter" in response.text
    assert "# TYPE flowgate_queue_depth gauge" in response.text


async def test_metrics_long_step_counts_lease_renewals(
    make_settings: Callable[..., Settings], target: str
) -> None:
    settings = make_settings(lease_secs=0.6, http_allow_private=True)
    workflow_id = f"wf_nap_{uuid.uuid4().hex[:8]}"
    with ThreadedServer(create_app(settings)) as running:
        async with httpx.AsyncClient(
            base_url=running.url, headers={"x-api-key": ADMIN_KEY}, timeout=30
        ) as http:
            slow_url = f"{target}/trickle?bytes=5&every=0.2"
            nap = {"id": "nap", "type": "http", "config": {"url": slow_url}}
            await create_workflow(http, steps_workflow(workflow_id, nap))
            before = await scrape(http)
            run = await run_and_wait(http, workflow_id)
            after = await scrape(http)

    renewed = value(after, "flowgate_lease_renewals_total", result="renewed") - value(
        before, "flowgate_lease_renewals_total", result="renewed"
    )
    assert run["status"] == "completed"
    assert renewed >= 2  # every lease_secs / 3 = 0.2 s during a 1 s step
    took = "flowgate_step_duration_seconds_sum"
    labels = {"step_type": "http", "status": "completed"}
    assert value(after, took, **labels) - value(before, took, **labels) >= 0.8


async def test_metrics_count_a_run_canceled_through_the_api_as_finished(
    client: httpx.AsyncClient,
) -> None:
    napping = f"wf_nap_{uuid.uuid4().hex[:8]}"
    await create_workflow(
        client,
        steps_workflow(napping, {"id": "nap", "type": "sleep", "config": {"seconds": 300}}),
    )
    started = await client.post(f"/api/v1/workflows/{napping}/run", json={"input": {}})
    run_id = started.json()["data"]["runId"]

    canceled = await client.post(f"/api/v1/runs/{run_id}/cancel")
    after = await scrape(client)

    assert canceled.status_code == 200, canceled.text
    assert value(after, "flowgate_runs_finished_total", workflow=napping, status="canceled") == 1
