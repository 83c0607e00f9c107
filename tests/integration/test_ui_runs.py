"""The monitor's runs list and run page over HTTP: filters, counts, bulk actions, the step
timeline, replay and rerun, child runs, live streams."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import ThreadedServer, wait_until
from tests.integration.conftest import create_workflow, simple_workflow
from tests.integration.test_ui import create_key, csrf_of, ended, run_of, sign_in

SLOW = simple_workflow("wf_slow", steps=[{"id": "nap", "type": "sleep", "config": {"seconds": 60}}])
FAILING = simple_workflow(
    "wf_failing",
    steps=[
        {"id": "prep", "type": "transform", "config": {"mapping": {"ok": True}}},
        {
            "id": "boom",
            "type": "fail",
            "retry": {"maxAttempts": 2, "initialDelayMs": 10},
            "config": {"message": "no luck"},
        },
    ],
)


@pytest.fixture
async def browser(server: ThreadedServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no API key that keeps cookies like a browser and follows no redirects."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


def row_ids(page: httpx.Response) -> list[str]:
    return re.findall(r'data-testid="run-row" data-run-id="([^"]+)"', page.text)


def counts_of(page: httpx.Response) -> dict[str, int]:
    section = page.text.split('data-testid="status-counts"', 1)[1].split("</nav>", 1)[0]
    found = re.findall(r'data-status="(\w+)">\w+ <span class="count">(\d+)</span>', section)
    return {status: int(count) for status, count in found}


async def finished(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = await wait_until(lambda: ended(client, run_id), timeout=10)
    return run


async def run_data(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]
    return data


async def next_event(lines: AsyncIterator[str], seconds: float = 10) -> str:
    """The name of the next SSE frame (skipping keep-alive comments and data lines)."""

    async def read() -> str:
        async for line in lines:
            if line.startswith("event:"):
                return line.removeprefix("event:").strip()
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(read(), seconds)


# --- the list: filters and counts --------------------------------------------------------------


async def test_runs_list_input_filter_matches_text_numbers_and_booleans(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    c1 = await run_of(client, "wf_fast", {"customerId": "c1"})
    c2 = await run_of(client, "wf_fast", {"customerId": "c2"})
    number = await run_of(client, "wf_fast", {"customerId": 42})
    text = await run_of(client, "wf_fast", {"customerId": "42"})
    nested = await run_of(client, "wf_fast", {"customer": {"vip": True, "tier": 2.5}})
    unusual = await run_of(client, "wf_fast", {"ship-to": "São Paulo/Centro", "q": 'a"b'})
    amounts = await run_of(client, "wf_fast", {"amount": 5.0, "debt": -7, "rate": 0.25})
    await sign_in(browser)

    async def matching(expression: str) -> set[str]:
        page = await browser.get("/ui/runs", params={"input": expression})
        assert page.status_code == 200, page.text
        return set(row_ids(page))

    assert await matching("input.customerId = c1") == {c1}
    assert await matching("input.customerId=c2") == {c2}
    assert await matching("input.customerId = 42") == {number, text}
    assert await matching('input.customerId = "42"') == {text}
    assert await matching("input.customer.vip = true") == {nested}
    assert await matching("input.customer.vip = false") == set()
    assert await matching("input.customer.tier = 2.50") == {nested}
    assert await matching("input.nothing = c1") == set()
    assert await matching("input.ship-to = São Paulo/Centro") == {unusual}
    assert await matching('input.q = "a\\"b"') == {unusual}
    assert await matching("input.q = a") == set()
    assert await matching("input.amount = 5") == {amounts}
    assert await matching("input.debt = -7") == {amounts}
    assert await matching("input.debt = 7") == set()
    assert await matching("input.rate = 0.250") == {amounts}
    assert await matching("input.rate = 0.2") == set()


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("customerId = c1", "write it as input.customerId = c1"),
        ("input.customerId c1", "write it as input.customerId = c1"),
        ("input.customerId =", "the value is missing"),
        ("input.a.b.c.d.e.f.g.h.i = 1", "at most 8"),
        ("input.a'b = 1", "&#34;a&#39;b&#34; is not a key"),
        ("input.a..b = 1", "&#39;&#39; is not a key"),
        ('input.a = "unclosed', "a quoted value must be one JSON string"),
        ("input.n = 99999999999999999999", "too large"),
        ("input.n = a\x01b", "input holds a control character"),
    ],
)
async def test_runs_list_bad_input_filter_is_a_400_page(
    browser: httpx.AsyncClient, expression: str, message: str
) -> None:
    await sign_in(browser)

    response = await browser.get("/ui/runs", params={"input": expression})

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text
    assert 'name="input"' in response.text  # the form is shown again to correct it


async def test_runs_list_filters_by_time_range(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    first = await run_of(client, "wf_fast", {"n": 1})
    first_at = datetime.fromisoformat((await run_data(client, first))["createdAt"])
    await wait_until(lambda: datetime.now(UTC) > first_at + timedelta(milliseconds=5))
    second = await run_of(client, "wf_fast", {"n": 2})
    second_at = (await run_data(client, second))["createdAt"]
    await sign_in(browser)
    stamp = first_at.isoformat().replace("+00:00", "Z")

    after = await browser.get("/ui/runs", params={"createdAfter": stamp})
    before = await browser.get("/ui/runs", params={"createdBefore": second_at})
    window = await browser.get(
        "/ui/runs", params={"createdAfter": "2000-01-01T00:00", "createdBefore": "2000-01-02T00:00"}
    )
    bad = await browser.get("/ui/runs", params={"createdAfter": "yesterday"})
    past_year_one = await browser.get(
        "/ui/runs", params={"createdBefore": "0001-01-01T00:00+05:00"}
    )
    upside_down = await browser.get(
        "/ui/runs", params={"createdAfter": second_at, "createdBefore": stamp}
    )

    assert row_ids(after) == [second]
    assert row_ids(before) == [first]
    assert row_ids(window) == []
    assert bad.status_code == 400
    assert "Created after: &#39;yesterday&#39; is not a date and time" in bad.text
    assert past_year_one.status_code == 400
    assert upside_down.status_code == 400
    assert "must be earlier" in upside_down.text


async def test_status_counts_follow_the_filter_except_status(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    await create_workflow(client, SLOW)
    for n in range(3):
        await finished(client, await run_of(client, "wf_fast", {"n": n}))
    slow = await run_of(client, "wf_slow", {})
    await sign_in(browser)

    everything = counts_of(await browser.get("/ui/runs"))
    fast = counts_of(await browser.get("/ui/runs", params={"workflowId": "wf_fast"}))
    chosen = await browser.get("/ui/runs", params={"workflowId": "fast", "status": "completed"})

    assert everything["completed"] == 3
    assert sum(everything.values()) == 4
    assert fast == {**dict.fromkeys(fast, 0), "completed": 3}
    assert counts_of(chosen)["completed"] == 3  # found by name; the status filter keeps counts
    assert len(row_ids(chosen)) == 3
    assert 'data-status="completed">' in chosen.text
    await client.post(f"/api/v1/runs/{slow}/cancel")


async def test_run_id_filter_jumps_to_the_run_of_this_project_only(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    run_id = await run_of(client, "wf_fast", {"n": 1})
    await sign_in(browser)

    found = await browser.get("/ui/runs", params={"runId": f" {run_id} "})
    missing = await browser.get("/ui/runs", params={"runId": "run_<nope>"})
    control = await browser.get("/ui/runs", params={"runId": "run_\x01", "workflowId": "\x01"})

    assert found.status_code == 303
    assert found.headers["location"] == f"/ui/runs/{run_id}"
    assert missing.status_code == 404
    assert "No run &#39;run_&lt;nope&gt;&#39; in this project" in missing.text
    assert control.status_code == 400

    project = await client.post("/api/v1/projects", json={"name": "Other"})
    other = await create_key(client, ["admin"], projectId=project.json()["data"]["id"])
    browser.cookies.clear()
    await sign_in(browser, other["key"])
    foreign = await browser.get("/ui/runs", params={"runId": run_id})
    assert foreign.status_code == 404


# --- bulk actions -------------------------------------------------------------------------------


async def test_bulk_cancel_shows_the_dry_run_count_then_cancels(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, SLOW)
    await create_workflow(client, simple_workflow("wf_fast"))
    slow = [await run_of(client, "wf_slow", {"i": i}) for i in range(3)]
    other = await run_of(client, "wf_slow", {"i": 99})
    fast = await run_of(client, "wf_fast", {"n": 1})
    await finished(client, fast)
    await sign_in(browser)
    listed = await browser.get("/ui/runs", params={"workflowId": "wf_slow"})
    assert "Cancel matching runs…" in listed.text
    assert "Replay matching runs…" in listed.text

    confirm = await browser.get(
        "/ui/runs/bulk/cancel", params={"workflowId": "wf_slow", "input": "input.i < 5"}
    )
    assert confirm.status_code == 400  # the filter is checked before anything is counted
    confirm = await browser.get(
        "/ui/runs/bulk/cancel", params={"workflowId": "wf_slow", "createdBefore": ""}
    )
    assert confirm.status_code == 200
    assert "Cancel 4 runs?" in confirm.text
    await client.post(f"/api/v1/runs/{other}/cancel")
    confirm = await browser.get("/ui/runs/bulk/cancel", params={"workflowId": "wf_slow"})
    assert "<title>Cancel 3 runs?" in confirm.text
    assert ">Confirm</button>" in confirm.text
    assert "canceled" not in [(await run_data(client, r))["status"] for r in slow]  # a dry run

    response = await browser.post(
        "/ui/runs/bulk/cancel", data={"csrf": csrf_of(confirm), "workflowId": "wf_slow"}
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/runs?workflowId=wf_slow&done=cancel&count=3"
    assert {(await run_data(client, r))["status"] for r in slow} == {"canceled"}
    assert (await run_data(client, fast))["status"] == "completed"
    after = await browser.get(response.headers["location"])
    assert "Canceled 3 runs." in after.text
    nothing = await browser.get("/ui/runs/bulk/cancel", params={"workflowId": "wf_slow"})
    assert "Nothing to cancel" in nothing.text
    assert "Confirm" not in nothing.text


async def test_bulk_cancel_honours_the_input_filter(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, SLOW)
    keep = await run_of(client, "wf_slow", {"customerId": "c2"})
    cancel = await run_of(client, "wf_slow", {"customerId": "c1"})
    await sign_in(browser)
    confirm = await browser.get("/ui/runs/bulk/cancel", params={"input": "input.customerId = c1"})
    assert "Cancel 1 run?" in confirm.text

    response = await browser.post(
        "/ui/runs/bulk/cancel", data={"csrf": csrf_of(confirm), "input": "input.customerId = c1"}
    )

    assert response.status_code == 303
    assert (await run_data(client, cancel))["status"] == "canceled"
    assert (await run_data(client, keep))["status"] != "canceled"
    await client.post(f"/api/v1/runs/{keep}/cancel")


async def test_bulk_actions_refuse_a_missing_or_forged_csrf_token(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, SLOW)
    run_id = await run_of(client, "wf_slow", {})
    await sign_in(browser)

    missing = await browser.post("/ui/runs/bulk/cancel", data={"workflowId": "wf_slow"})
    forged = await browser.post("/ui/runs/bulk/replay", data={"csrf": "forged"})
    signed_out = await httpx.AsyncClient(base_url=str(browser.base_url)).post(
        "/ui/runs/bulk/cancel", data={"csrf": "forged"}
    )

    assert (missing.status_code, forged.status_code) == (403, 403)
    assert "CSRF" in missing.text
    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith("/ui/login")
    assert (await run_data(client, run_id))["status"] != "canceled"
    replays = (await client.get("/api/v1/runs", params={"source": "replay"})).json()["data"]
    assert replays == []
    await client.post(f"/api/v1/runs/{run_id}/cancel")


async def test_bulk_replay_starts_one_replay_per_matching_run(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    originals = [await run_of(client, "wf_fast", {"n": n}) for n in range(2)]
    for run_id in originals:
        await finished(client, run_id)
    await sign_in(browser)
    confirm = await browser.get("/ui/runs/bulk/replay", params={"status": "completed"})
    assert "Replay 2 runs?" in confirm.text

    response = await browser.post(
        "/ui/runs/bulk/replay", data={"csrf": csrf_of(confirm), "status": "completed"}
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/runs?source=replay&done=replay&count=2"
    replays = (await client.get("/api/v1/runs", params={"source": "replay"})).json()["data"]
    assert sorted(r["replayOf"] for r in replays) == sorted(originals)
    page = await browser.get(response.headers["location"])
    assert set(row_ids(page)) == {r["id"] for r in replays}
    assert "Started 2 runs as replays." in page.text


# --- a run's page -------------------------------------------------------------------------------


async def test_run_page_shows_one_bar_per_attempt_and_rerun_for_a_failed_run(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, FAILING)
    run_id = await run_of(client, "wf_failing", {"customerId": "<c1>"})
    assert (await finished(client, run_id))["status"] == "failed"
    await sign_in(browser)

    page = await browser.get(f"/ui/runs/{run_id}")

    assert page.status_code == 200
    timeline = page.text.split('data-testid="timeline"', 1)[1].split("<h2>Steps", 1)[0]
    bars = re.findall(r'data-testid="attempt-bar" data-step="(\w+)" data-attempt="(\d)"', timeline)
    assert bars == [("prep", "1"), ("boom", "1"), ("boom", "2")]
    assert "retry" in timeline
    assert '<span class="status status-failed" data-testid="run-status">failed</span>' in page.text
    assert "Rerun from failed step" in page.text
    assert ">Replay</button>" in page.text
    assert "Cancel run" not in page.text
    assert '<span class="j-key">&#34;customerId&#34;</span>' in page.text
    assert '<span class="j-str">&#34;&lt;c1&gt;&#34;</span>' in page.text
    assert "sse-connect" not in page.text  # an ended run has nothing to follow


async def test_replay_button_starts_a_replay_and_redirects_to_it(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    original = await run_of(client, "wf_fast", {"n": 7})
    await finished(client, original)
    await sign_in(browser)
    page = await browser.get(f"/ui/runs/{original}")

    response = await browser.post(f"/ui/runs/{original}/replay", data={"csrf": csrf_of(page)})

    assert response.status_code == 303
    new_id = response.headers["location"].removeprefix("/ui/runs/")
    assert new_id != original
    new = await run_data(client, new_id)
    assert (new["source"], new["replayOf"], new["input"]) == ("replay", original, {"n": 7})
    shown = await browser.get(response.headers["location"])
    assert f'Replay of <a href="/ui/runs/{original}">' in shown.text
    refused = await browser.post(f"/ui/runs/{original}/replay", data={"csrf": "forged"})
    assert refused.status_code == 403


async def test_rerun_button_starts_a_rerun_and_refuses_a_run_that_has_not_ended(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, FAILING)
    await create_workflow(client, SLOW)
    failed = await run_of(client, "wf_failing", {})
    await finished(client, failed)
    slow = await run_of(client, "wf_slow", {})
    await sign_in(browser)
    token = csrf_of(await browser.get(f"/ui/runs/{failed}"))

    response = await browser.post(f"/ui/runs/{failed}/rerun", data={"csrf": token})
    too_early = await browser.post(f"/ui/runs/{slow}/rerun", data={"csrf": token})

    assert response.status_code == 303
    new_id = response.headers["location"].removeprefix("/ui/runs/")
    new = await run_data(client, new_id)
    assert (new["source"], new["rerunOf"]) == ("rerun", failed)
    shown = await browser.get(response.headers["location"])
    assert f'Rerun of <a href="/ui/runs/{failed}">' in shown.text
    assert too_early.status_code == 409
    assert "Only a run that has ended can be rerun" in too_early.text
    assert "Cancel run" in too_early.text
    await client.post(f"/api/v1/runs/{slow}/cancel")


async def test_run_page_links_parent_and_child_runs(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_child"))
    await create_workflow(
        client,
        simple_workflow(
            "wf_parent",
            steps=[
                {
                    "id": "call",
                    "type": "run_workflow",
                    "config": {"workflow": "wf_child", "input": {"n": 1}, "wait": True},
                }
            ],
        ),
    )
    parent = await run_of(client, "wf_parent", {})
    await finished(client, parent)
    [child] = (await client.get("/api/v1/runs", params={"source": "workflow"})).json()["data"]
    await sign_in(browser)

    parent_page = await browser.get(f"/ui/runs/{parent}")
    child_page = await browser.get(f"/ui/runs/{child['id']}")

    assert "Child runs" in parent_page.text
    assert f'<tr data-testid="child-run"><td><a href="/ui/runs/{child["id"]}">' in parent_page.text
    assert f'Parent run</dt><dd><a href="/ui/runs/{parent}">' in child_page.text
    assert "Child runs" not in child_page.text


async def test_run_of_another_project_is_404_everywhere(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, SLOW)
    run_id = await run_of(client, "wf_slow", {})
    project = await client.post("/api/v1/projects", json={"name": "Other"})
    other = await create_key(client, ["admin"], projectId=project.json()["data"]["id"])
    await sign_in(browser, other["key"])
    token = csrf_of(await browser.get("/ui/runs"))

    pages = [
        await browser.get(f"/ui/runs/{run_id}"),
        await browser.get(f"/ui/runs/{run_id}/body"),
        await browser.get(f"/ui/runs/{run_id}/live"),
        await browser.post(f"/ui/runs/{run_id}/replay", data={"csrf": token}),
        await browser.post(f"/ui/runs/{run_id}/rerun", data={"csrf": token}),
        await browser.post(f"/ui/runs/{run_id}/cancel", data={"csrf": token}),
    ]

    assert [p.status_code for p in pages] == [404] * 6
    assert all("Run not found" in p.text for p in pages)
    assert (await run_data(client, run_id))["status"] != "canceled"
    await client.post(f"/api/v1/runs/{run_id}/cancel")


# --- live updates -------------------------------------------------------------------------------


async def test_runs_live_stream_tells_a_viewer_of_new_runs_and_refuses_strangers(
    server: ThreadedServer, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, SLOW)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as stranger:
        refused = await stranger.get("/ui/runs/live")
    assert refused.status_code == 401
    assert not refused.headers["content-type"].startswith("text/event-stream")
    await sign_in(browser)
    page = await browser.get("/ui/runs")
    assert 'sse-connect="/ui/runs/live"' in page.text
    assert 'hx-trigger="sse:changed"' in page.text

    async with browser.stream("GET", "/ui/runs/live") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await next_event(lines) == "changed"  # at once: the page may be older
        run_id = await run_of(client, "wf_slow", {})
        assert await next_event(lines) == "changed"  # a new run
        await client.post(f"/api/v1/runs/{run_id}/cancel")
        assert await next_event(lines) == "changed"  # a watched run ended

    fragment = await browser.get("/ui/runs/table")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert row_ids(fragment) == [run_id]


async def test_run_live_stream_follows_the_run_until_it_ends(
    server: ThreadedServer, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, SLOW)
    run_id = await run_of(client, "wf_slow", {})
    await sign_in(browser)
    page = await browser.get(f"/ui/runs/{run_id}")
    assert f'sse-connect="/ui/runs/{run_id}/live" sse-close="end"' in page.text
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as stranger:
        assert (await stranger.get(f"/ui/runs/{run_id}/live")).status_code == 401

    async with browser.stream("GET", f"/ui/runs/{run_id}/live") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await next_event(lines) == "changed"
        await client.post(f"/api/v1/runs/{run_id}/cancel")
        events = [await next_event(lines), await next_event(lines)]
        assert events[-1] == "end"
        assert events[0] == "changed"

    body = await browser.get(f"/ui/runs/{run_id}/body")
    assert '<span class="status status-canceled" data-testid="run-status">canceled</span>' in (
        body.text
    )
    assert "hx-trigger" not in body.text  # ended: the fragment stops asking


async def test_read_only_viewer_sees_no_actions_and_cannot_use_them(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, SLOW)
    run_id = await run_of(client, "wf_slow", {})
    key = await create_key(client, ["runs:read"])
    await sign_in(browser, key["key"])

    listed = await browser.get("/ui/runs")
    page = await browser.get(f"/ui/runs/{run_id}")
    confirm = await browser.get("/ui/runs/bulk/cancel")

    assert row_ids(listed) == [run_id]
    assert "Cancel matching runs…" not in listed.text
    assert "Cancel run" not in page.text
    assert ">Replay</button>" not in page.text
    assert confirm.status_code == 403
    assert "runs:write" in confirm.text
    await client.post(f"/api/v1/runs/{run_id}/cancel")


async def test_fragments_send_a_signed_out_viewer_to_sign_in(browser: httpx.AsyncClient) -> None:
    table = await browser.get("/ui/runs/table", headers={"HX-Request": "true"})
    body = await browser.get("/ui/runs/run_x/body", headers={"HX-Request": "true"})

    assert (table.status_code, body.status_code) == (204, 204)
    assert table.headers["HX-Redirect"] == "/ui/login?next=%2Fui%2Fruns"
    assert body.headers["HX-Redirect"] == "/ui/login?next=%2Fui%2Fruns%2Frun_x"


async def test_run_page_shows_queue_position_and_waits(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, {**SLOW, "id": "wf_one", "concurrency": {"limit": 1}})
    await create_workflow(
        client,
        simple_workflow(
            "wf_approval",
            steps=[
                {
                    "id": "wait",
                    "type": "wait_for_event",
                    "config": {"eventKey": "approval-<{{input.orderId}}>", "timeoutSecs": 3600},
                }
            ],
        ),
    )
    holder = await run_of(client, "wf_one", {})
    queued = await run_of(client, "wf_one", {})
    waiting = await run_of(client, "wf_approval", {"orderId": "o1"})
    await wait_until(lambda: _status_is(client, waiting, "waiting"))
    await wait_until(lambda: _status_is(client, holder, "waiting"))
    await sign_in(browser)

    queued_page = await browser.get(f"/ui/runs/{queued}")
    waiting_page = await browser.get(f"/ui/runs/{waiting}")
    sleeping_page = await browser.get(f"/ui/runs/{holder}")

    assert 'data-testid="run-status">queued<' in queued_page.text
    assert '<dd data-testid="queue-position">position 1 (limit 1)</dd>' in queued_page.text
    assert "Waiting for events" in waiting_page.text
    assert "<code>approval-&lt;o1&gt;</code>" in waiting_page.text
    assert "Wakes at" in sleeping_page.text
    for run_id in (holder, queued, waiting):
        await client.post(f"/api/v1/runs/{run_id}/cancel")


async def _status_is(client: httpx.AsyncClient, run_id: str, status: str) -> bool:
    return (await run_data(client, run_id))["status"] == status


def test_timeline_labels_retries_and_lost_attempts_on_one_axis() -> None:
    from flowgate.ui.runs import timeline

    start = datetime(2026, 1, 1, tzinfo=UTC)

    def at(ms: int) -> datetime:
        return start + timedelta(milliseconds=ms)

    def attempt(number: int, begin: int, end: int | None, status: str, code: str | None) -> Any:
        error = None if code is None else {"code": code, "message": "<lost>", "stepId": "call"}
        return {
            "id": f"stp_{number}", "run_id": "run_1", "step_id": "call", "position": 0,
            "attempt": number, "status": status, "output": None, "error": error,
            "started_at": at(begin), "completed_at": None if end is None else at(end),
        }  # fmt: skip

    run: Any = {
        "status": "running", "created_at": start, "started_at": start, "completed_at": None,
    }  # fmt: skip
    attempts = [
        attempt(1, 0, 500, "failed", "WORKER_LOST"),
        attempt(2, 500, 750, "failed", "STEP_FAILED"),
        attempt(3, 750, None, "running", None),
    ]

    shown = timeline(run, attempts, now=at(1000), names={"call": "Call"})

    bars = [(b["attempt"], b["x"], b["width"], b["lost"], b["retry"]) for b in shown["bars"]]
    assert bars == [
        (1, "0.0", "500.0", True, False),
        (2, "500.0", "250.0", False, True),
        (3, "750.0", "250.0", False, True),
    ]
    assert shown["total"] == "1.0 s"
    assert "&lt;lost&gt;" in str(shown["bars"][0]["error"])
