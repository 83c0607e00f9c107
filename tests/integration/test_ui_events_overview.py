"""The monitor's events page (waiting triggers, send, cancel) and overview (charts per 15-minute
bucket, slowest and most failing workflows), over HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from flowgate import clock
from flowgate.settings import Settings
from flowgate.store import open_store
from flowgate.store import tables as t
from tests.conftest import ThreadedServer, wait_until
from tests.integration.conftest import create_workflow, simple_workflow
from tests.integration.test_ui import create_key, csrf_of, ended, run_of, sign_in

BUCKET_MS = 15 * 60 * 1000
PAYLOAD_LIMIT = 2_000

APPROVAL = simple_workflow(
    "wf_approval",
    steps=[
        {
            "id": "approval",
            "type": "wait_for_event",
            "config": {"eventKey": "approval-{{input.orderId}}", "timeoutSecs": 3600},
        },
        {
            "id": "decide",
            "type": "transform",
            "config": {"mapping": {"approved": "{{steps.approval.output.approved}}"}},
        },
    ],
)


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_output_bytes=PAYLOAD_LIMIT)


@pytest.fixture
async def browser(server: ThreadedServer) -> AsyncIterator[httpx.AsyncClient]:
    """No API key; keeps cookies like a browser and does not follow redirects."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


# --- helpers ------------------------------------------------------------------------------------


def _run_row(
    n: int, *, project: str, workflow: str, status: str, created: datetime, took_ms: int | None
) -> dict[str, Any]:
    started = created + timedelta(milliseconds=10)
    # An unfinished run leased far ahead: no worker of the test server takes it over.
    lease = {"lease_owner": "elsewhere", "lease_expires_at": created + timedelta(days=2)}
    return {
        **(lease if took_ms is None else {"lease_owner": None, "lease_expires_at": None}),
        "id": f"run_seed{project[-3:]}{n:05d}",
        "project_id": project,
        "workflow_id": workflow,
        "workflow_version": 1,
        "status": status,
        "input": {},
        "env": {},
        "source": "api",
        "created_at": created,
        "started_at": started,
        "completed_at": None if took_ms is None else started + timedelta(milliseconds=took_ms),
    }


async def seed_runs(database_url: str, runs: list[dict[str, Any]], *projects: str) -> None:
    """Finished runs written straight into the database (the API stamps the current time)."""
    store = open_store(database_url)
    try:
        now = clock.Clock().now()
        for project in projects:
            await store.ensure_project(
                {
                    "id": project,
                    "org_id": "org_default",
                    "name": project,
                    "run_quota_per_day": None,
                    "created_at": now,
                    "event_buffer_secs": None,
                }
            )
        await store.write(lambda conn: conn.execute(t.runs.insert(), runs))
    finally:
        await store.close()


def bucket_of(when: datetime) -> str:
    millis = clock.to_millis(when) // BUCKET_MS * BUCKET_MS
    return clock.to_wire(clock.from_millis(millis)) or ""


def svg_of(page: str, label: str) -> str:
    found = re.search(rf'<svg[^>]*aria-label="{label}"[^>]*>(.*?)</svg>', page, re.S)
    assert found, page
    return found.group(1)


def bars(svg: str, *attributes: str) -> dict[str, tuple[str, ...]]:
    """``data-start`` of each bar → the values of ``attributes``."""
    found: dict[str, tuple[str, ...]] = {}
    for rect in re.findall(r"<rect [^>]*>", svg):
        values = dict(re.findall(r'data-([a-z]+)="([^"]*)"', rect))
        found[values["start"]] = tuple(values[name] for name in attributes)
    return found


def rows(page: str, testid: str) -> list[dict[str, str]]:
    return [
        {k: html.unescape(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', tag)}
        for tag in re.findall(rf'<tr data-testid="{testid}"[^>]*>', page)
    ]


async def waiting_key(client: httpx.AsyncClient, key: str) -> bool:
    response = await client.get(f"/v1/events/{key}")
    return response.status_code == 200 and response.json()["status"] == "waiting"


async def start_approval(client: httpx.AsyncClient, order: str) -> str:
    run_id = await run_of(client, "wf_approval", {"orderId": order})
    await wait_until(lambda: waiting_key(client, f"approval-{order}"))
    return run_id


async def events_page(browser: httpx.AsyncClient) -> httpx.Response:
    page = await browser.get("/ui/events")
    assert page.status_code == 200, page.text
    return page


# --- overview -----------------------------------------------------------------------------------


async def test_overview_charts_count_runs_per_bucket_and_failure_rate(
    browser: httpx.AsyncClient, database_url: str
) -> None:
    now = clock.Clock().now()
    two_hours, five_hours = now - timedelta(hours=2), now - timedelta(hours=5)
    seeded = [
        ("completed", two_hours),
        ("completed", two_hours),
        ("failed", two_hours),
        ("canceled", two_hours),
        ("running", two_hours),  # not ended
        ("timed_out", five_hours),
        ("completed", five_hours),
        ("completed", now - timedelta(hours=30)),  # outside the window
    ]
    runs = [
        _run_row(
            n,
            project="prj_default",
            workflow="wf_a",
            status=s,
            created=c,
            took_ms=None if s == "running" else 5,
        )
        for n, (s, c) in enumerate(seeded)
    ]
    runs.append(
        _run_row(
            99, project="prj_other", workflow="wf_a", status="failed", created=two_hours, took_ms=5
        )
    )
    await seed_runs(database_url, runs, "prj_other")
    await sign_in(browser)

    page = await browser.get("/ui/overview")

    assert page.status_code == 200, page.text
    assert "<title>Overview · flowgate</title>" in page.text
    assert "No runs were created" not in page.text
    per_minute = bars(svg_of(page.text, "Runs per minute"), "runs")
    assert per_minute == {bucket_of(two_hours): ("5",), bucket_of(five_hours): ("2",)}
    failures = bars(svg_of(page.text, "Failure rate"), "failed", "ended", "rate")
    assert failures == {
        bucket_of(two_hours): ("1", "4", "25%"),
        bucket_of(five_hours): ("1", "2", "50%"),
    }
    assert "axis-title" in page.text
    assert "style=" not in page.text


async def test_overview_of_an_empty_project_says_so_with_empty_charts(
    browser: httpx.AsyncClient,
) -> None:
    await sign_in(browser)

    page = await browser.get("/ui/overview")

    assert page.status_code == 200, page.text
    assert "No runs were created in the last 24 hours" in page.text
    for label in ("Runs per minute", "Failure rate"):
        assert "<rect" not in svg_of(page.text, label)
    assert "No run completed in the last 24 hours." in page.text
    assert "No run failed in the last 24 hours." in page.text


async def test_overview_lists_slowest_and_most_failing_workflows_with_links(
    browser: httpx.AsyncClient, database_url: str
) -> None:
    when = clock.Clock().now() - timedelta(hours=1)
    seeded = [
        ("wf_slow", "completed", 10_000),
        ("wf_slow", "completed", 20_000),
        ("wf_fast", "completed", 100),
        ("wf_flaky", "failed", 50),
        ("wf_flaky", "timed_out", 50),
        ("wf_flaky", "failed", 50),
        ("wf_flaky", "completed", 1_000),
        ("wf_broken", "failed", 50),
        ("wf_broken", "canceled", None),
    ]
    runs = [
        _run_row(n, project="prj_default", workflow=w, status=s, created=when, took_ms=took)
        for n, (w, s, took) in enumerate(seeded)
    ]
    runs.append(
        _run_row(
            99, project="prj_other", workflow="wf_fast", status="failed", created=when, took_ms=9
        )
    )
    await seed_runs(database_url, runs, "prj_other")
    await sign_in(browser)

    page = await browser.get("/ui/overview")

    assert page.status_code == 200, page.text
    slowest = [(r["workflow-id"], r["mean-ms"]) for r in rows(page.text, "slowest-row")]
    assert slowest == [("wf_slow", "15000"), ("wf_flaky", "1000"), ("wf_fast", "100")]
    failing = [(r["workflow-id"], r["failed"], r["rate"]) for r in rows(page.text, "failing-row")]
    assert failing == [("wf_flaky", "3", "75%"), ("wf_broken", "1", "50%")]
    links = [
        html.unescape(h) for h in re.findall(r'href="(/ui/runs\?workflowId=[^"]+)"', page.text)
    ]
    assert any(link.startswith("/ui/runs?workflowId=wf_slow&createdAfter=") for link in links)
    failed_link = next(link for link in links if "wf_flaky" in link and "status=" in link)
    listed = await browser.get(failed_link)
    assert listed.status_code == 200, listed.text
    assert listed.text.count('data-testid="run-row"') == 3


async def test_overview_counts_runs_started_through_the_api(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_quick"))
    for n in range(3):
        run_id = await run_of(client, "wf_quick", {"n": n})
        await wait_until(lambda run_id=run_id: ended(client, run_id))
    await sign_in(browser)

    page = await browser.get("/ui/overview")

    counted = bars(svg_of(page.text, "Runs per minute"), "runs")
    assert sum(int(runs) for (runs,) in counted.values()) == 3
    assert [r["workflow-id"] for r in rows(page.text, "slowest-row")] == ["wf_quick"]


async def test_overview_reuses_settled_buckets_but_reads_the_last_hour_every_time(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, database_url: str
) -> None:
    """Buckets older than an hour come from a short-lived cache (a run created there may end
    later; the overview may show it up to 30 s late); the newest hour is read on each request."""
    three_hours = clock.Clock().now() - timedelta(hours=3)
    await seed_runs(
        database_url,
        [
            _run_row(
                1,
                project="prj_default",
                workflow="wf_old",
                status="completed",
                created=three_hours,
                took_ms=5,
            ),
        ],
    )
    await sign_in(browser)
    first = bars(svg_of((await browser.get("/ui/overview")).text, "Runs per minute"), "runs")
    await seed_runs(
        database_url,
        [
            _run_row(
                2,
                project="prj_default",
                workflow="wf_old",
                status="completed",
                created=three_hours,
                took_ms=5,
            ),
        ],
    )
    await create_workflow(client, simple_workflow("wf_new"))
    run_id = await run_of(client, "wf_new", {"n": 1})
    await wait_until(lambda: ended(client, run_id))

    second = bars(svg_of((await browser.get("/ui/overview")).text, "Runs per minute"), "runs")

    assert first == {bucket_of(three_hours): ("1",)}
    assert second[bucket_of(three_hours)] == ("1",)  # settled: reused
    assert sum(int(runs) for (runs,) in second.values()) == 2  # the new run: read at once


# --- events -------------------------------------------------------------------------------------


async def test_events_page_lists_a_waiting_run_and_send_resumes_it(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, APPROVAL)
    run_id = await start_approval(client, "1001")
    await sign_in(browser)
    page = await events_page(browser)
    assert "<title>Events · flowgate</title>" in page.text
    [row] = rows(page.text, "event-row")
    assert row["event-key"] == "approval-1001"
    assert f'href="/ui/runs/{run_id}"' in page.text
    assert '<label for="event-key">Event key</label>' in page.text
    assert '<label for="event-payload">Payload (JSON)</label>' in page.text

    sent = await browser.post(
        "/ui/events/send",
        data={"csrf": csrf_of(page), "key": "approval-1001", "payload": '{"approved": true}'},
    )

    assert sent.status_code == 200, sent.text
    assert "its run resumes" in sent.text
    assert f'<a href="/ui/runs/{run_id}">{run_id}</a>' in sent.text
    done = await wait_until(lambda: ended(client, run_id))
    assert (done["status"], done["output"]) == ("completed", {"approved": True})
    assert rows((await events_page(browser)).text, "event-row") == []


async def test_events_cancel_ends_the_wait_and_fails_the_run(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, APPROVAL)
    run_id = await start_approval(client, "7")
    await sign_in(browser)
    page = await events_page(browser)

    canceled = await browser.post(
        "/ui/events/cancel", data={"csrf": csrf_of(page), "key": "approval-7"}
    )

    assert canceled.status_code == 200, canceled.text
    assert "Canceled the wait on &#39;approval-7&#39;" in canceled.text
    assert rows(canceled.text, "event-row") == []
    done = await wait_until(lambda: ended(client, run_id))
    assert done["status"] == "failed"
    assert (await client.get("/v1/events/approval-7")).json()["status"] == "canceled"
    again = await browser.post(
        "/ui/events/cancel", data={"csrf": csrf_of(page), "key": "approval-7"}
    )
    assert again.status_code == 409
    assert "not in waiting state" in again.text


async def test_events_send_with_bad_json_shows_the_error_and_keeps_the_form(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, APPROVAL)
    await start_approval(client, "8")
    await sign_in(browser)
    page = await events_page(browser)

    sent = await browser.post(
        "/ui/events/send",
        data={"csrf": csrf_of(page), "key": "approval-8", "payload": '{"approved": tru'},
    )

    assert sent.status_code == 400
    assert "Payload (JSON) is not valid JSON" in sent.text
    assert 'value="approval-8"' in sent.text
    assert "{&#34;approved&#34;: tru</textarea>" in sent.text
    assert await waiting_key(client, "approval-8")


async def test_events_send_to_a_key_nobody_waits_for_says_so(
    browser: httpx.AsyncClient,
) -> None:
    await sign_in(browser)
    page = await events_page(browser)

    sent = await browser.post(
        "/ui/events/send", data={"csrf": csrf_of(page), "key": "nobody-here", "payload": "{}"}
    )

    assert sent.status_code == 404
    assert "Nothing waits for &#39;nobody-here&#39;" in sent.text


async def test_events_send_over_the_payload_limit_is_refused(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, APPROVAL)
    await start_approval(client, "9")
    await sign_in(browser)
    page = await events_page(browser)
    big = '{"blob": "' + "x" * PAYLOAD_LIMIT + '"}'

    sent = await browser.post(
        "/ui/events/send", data={"csrf": csrf_of(page), "key": "approval-9", "payload": big}
    )

    assert sent.status_code == 413
    assert f"over the limit of {PAYLOAD_LIMIT:,}" in sent.text
    assert await waiting_key(client, "approval-9")


async def test_events_forms_without_the_csrf_token_are_refused(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, APPROVAL)
    await start_approval(client, "10")
    await sign_in(browser)
    token = csrf_of(await events_page(browser))

    sent = await browser.post("/ui/events/send", data={"key": "approval-10", "payload": "{}"})
    canceled = await browser.post(
        "/ui/events/cancel", data={"csrf": token[:-2] + "xx", "key": "approval-10"}
    )

    assert (sent.status_code, canceled.status_code) == (403, 403)
    assert "CSRF" in sent.text
    assert await waiting_key(client, "approval-10")


async def test_events_key_without_events_write_gets_403(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, APPROVAL)
    await start_approval(client, "11")
    reader = await create_key(client, ["runs:read"])
    await sign_in(browser, reader["key"])
    page = await events_page(browser)
    assert [r["event-key"] for r in rows(page.text, "event-row")] == ["approval-11"]

    sent = await browser.post(
        "/ui/events/send", data={"csrf": csrf_of(page), "key": "approval-11", "payload": "{}"}
    )
    canceled = await browser.post(
        "/ui/events/cancel", data={"csrf": csrf_of(page), "key": "approval-11"}
    )

    assert (sent.status_code, canceled.status_code) == (403, 403)
    assert "lacks the &#39;events:write&#39; scope" in sent.text
    assert "<html" in canceled.text
    assert await waiting_key(client, "approval-11")


async def test_events_page_shows_only_the_projects_own_waits(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, server: ThreadedServer
) -> None:
    project = await client.post("/api/v1/projects", json={"name": "B"})
    assert project.status_code == 201, project.text
    b_key = await create_key(client, ["admin"], projectId=project.json()["data"]["id"])
    async with httpx.AsyncClient(
        base_url=server.url, headers={"x-api-key": b_key["key"]}, timeout=30
    ) as other:
        created = await other.post(
            "/v1/events", json={"event_key": "b-secret-wait", "timeout_secs": 600}
        )
        assert created.status_code == 201, created.text
    await sign_in(browser)

    page = await events_page(browser)

    assert "b-secret-wait" not in page.text
    assert 'data-testid="events-empty"' in page.text
    sent = await browser.post(
        "/ui/events/send", data={"csrf": csrf_of(page), "key": "b-secret-wait", "payload": "1"}
    )
    assert sent.status_code == 404


async def test_events_page_pages_by_cursor(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    for n in range(53):
        created = await client.post(
            "/v1/events", json={"event_key": f"job-{n:02d}", "timeout_secs": 600}
        )
        assert created.status_code == 201, created.text
    await sign_in(browser)

    first = await events_page(browser)
    older = re.search(r'href="(/ui/events\?cursor=[^"]+)" rel="next"', first.text)
    assert older, first.text
    second = await browser.get(html.unescape(older.group(1)))

    assert second.status_code == 200, second.text
    keys = [r["event-key"] for r in rows(first.text, "event-row") + rows(second.text, "event-row")]
    assert len(rows(first.text, "event-row")) == 50
    assert sorted(keys) == [f"job-{n:02d}" for n in range(53)]
    assert 'rel="next"' not in second.text
    bad = await browser.get("/ui/events", params={"cursor": "yesterday"})
    assert bad.status_code == 400
    assert "invalid cursor format" in bad.text


async def test_events_send_signed_out_leads_to_login_and_back_to_the_page(
    browser: httpx.AsyncClient,
) -> None:
    refused = await browser.post("/ui/events/send", data={"key": "k", "payload": "{}"})

    assert refused.status_code == 303
    assert refused.headers["location"] == "/ui/login?next=%2Fui%2Fevents%2Fsend"
    await sign_in(browser)
    back = await browser.get("/ui/events/send")
    assert (back.status_code, back.headers["location"]) == (303, "/ui/events")
