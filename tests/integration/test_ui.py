"""The runs monitor's first pages (DESIGN §3, §7): sign-in, session cookie, CSRF, runs, one run."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.integration.conftest import create_workflow, simple_workflow

SLOW = simple_workflow("wf_slow", steps=[{"id": "nap", "type": "sleep", "config": {"seconds": 60}}])


@pytest.fixture
async def browser(server: ThreadedServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no API key: it keeps cookies like a browser and does not follow redirects."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


async def sign_in(browser: httpx.AsyncClient, key: str = ADMIN_KEY) -> httpx.Response:
    response = await browser.post("/ui/login", data={"key": key, "next": "/ui/runs"})
    assert response.status_code == 303, response.text
    return response


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def run_of(client: httpx.AsyncClient, workflow_id: str, input_: Any) -> str:
    response = await client.post(f"/api/v1/workflows/{workflow_id}/run", json={"input": input_})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["data"]["runId"]
    return run_id


async def ended(client: httpx.AsyncClient, run_id: str) -> dict[str, Any] | None:
    run: dict[str, Any] = (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]
    return run if run["status"] in ("completed", "failed", "canceled", "timed_out") else None


async def create_key(client: httpx.AsyncClient, scopes: list[str], **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/keys", json={"name": "ui", "scopes": scopes, **extra})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# --- sign-in and the session ---------------------------------------------------------------------


async def test_login_sets_signed_httponly_strict_cookie_without_the_key(
    browser: httpx.AsyncClient,
) -> None:
    form = await browser.get("/ui/login")
    assert form.status_code == 200
    assert 'name="key"' in form.text
    assert '<label for="key">' in form.text

    response = await sign_in(browser)

    assert response.headers["location"] == "/ui/runs"
    cookie = response.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/ui" in attributes
    assert "secure" not in attributes  # the public URL is http here
    assert ADMIN_KEY not in cookie
    assert ADMIN_KEY[4:20] not in cookie
    page = await browser.get("/ui/runs")
    assert page.status_code == 200
    assert "<title>Runs" in page.text


async def test_login_with_wrong_key_shows_form_again_with_401(browser: httpx.AsyncClient) -> None:
    response = await browser.post("/ui/login", data={"key": "fgk_not_a_real_key"})

    assert response.status_code == 401
    assert "Invalid API key" in response.text
    assert 'name="key"' in response.text
    assert "set-cookie" not in response.headers


async def test_not_signed_in_redirects_to_login_with_next(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/ui/runs", params={"status": "failed"})

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fruns%3Fstatus%3Dfailed"
    assert (await browser.get("/ui")).headers["location"].startswith("/ui/login?next=")


async def test_the_server_root_leads_a_browser_to_the_monitor(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/")

    assert response.status_code == 307
    assert response.headers["location"] == "/ui"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ui", "/api/v1/runs"])
async def test_login_ignores_next_outside_the_monitor(
    browser: httpx.AsyncClient, target: str
) -> None:
    response = await browser.post("/ui/login", data={"key": ADMIN_KEY, "next": target})

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/runs"


async def test_ui_redirects_to_the_overview_when_signed_in(browser: httpx.AsyncClient) -> None:
    await sign_in(browser)

    response = await browser.get("/ui")

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/overview"


async def test_tampered_cookie_redirects_to_login(browser: httpx.AsyncClient) -> None:
    await sign_in(browser)
    value = browser.cookies["flowgate_session"]
    body, _, signature = value.partition(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + signature
    browser.cookies.clear()
    browser.cookies.set("flowgate_session", forged, path="/ui")

    response = await browser.get("/ui/runs")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login")


async def test_revoked_key_signs_the_session_out(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    key = await create_key(client, ["runs:read", "runs:write"])
    await sign_in(browser, key["key"])
    assert (await browser.get("/ui/runs")).status_code == 200

    revoked = await client.delete(f"/api/v1/keys/{key['id']}")
    assert revoked.status_code == 200, revoked.text

    response = await browser.get("/ui/runs")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login")


async def test_logout_needs_csrf_and_clears_the_session(browser: httpx.AsyncClient) -> None:
    await sign_in(browser)
    page = await browser.get("/ui/runs")
    token = csrf_of(page)

    missing = await browser.post("/ui/logout", data={})
    wrong = await browser.post("/ui/logout", data={"csrf": token[:-2] + "xx"})
    assert (missing.status_code, wrong.status_code) == (403, 403)
    assert "CSRF" in missing.text
    assert "<html" in missing.text
    assert (await browser.get("/ui/runs")).status_code == 200

    response = await browser.post("/ui/logout", data={"csrf": token})

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login"
    assert "flowgate_session" not in browser.cookies
    assert (await browser.get("/ui/runs")).status_code == 303


async def test_csrf_token_of_one_session_fails_in_another(
    server: ThreadedServer, browser: httpx.AsyncClient
) -> None:
    await sign_in(browser)
    token = csrf_of(await browser.get("/ui/runs"))
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as second:
        await sign_in(second)

        response = await second.post("/ui/logout", data={"csrf": token})

    assert response.status_code == 403


# --- the pages ----------------------------------------------------------------------------------


async def test_runs_list_shows_runs_and_filters_by_status(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    await create_workflow(client, SLOW)
    done = await run_of(client, "wf_fast", {"n": 1})
    await wait_until(lambda: ended(client, done))
    slow = await run_of(client, "wf_slow", {})
    await sign_in(browser)

    everything = await browser.get("/ui/runs")
    completed = await browser.get("/ui/runs", params={"status": "completed"})
    by_workflow = await browser.get("/ui/runs", params={"workflowId": "wf_slow"})

    assert everything.status_code == 200
    assert "<table" in everything.text
    assert f'href="/ui/runs/{done}"' in everything.text
    assert everything.text.index(slow) < everything.text.index(done)  # newest first
    assert done in completed.text
    assert slow not in completed.text
    assert "<title>Runs · completed" in completed.text
    assert slow in by_workflow.text
    assert done not in by_workflow.text
    await client.post(f"/api/v1/runs/{slow}/cancel")


async def test_runs_list_pages_with_a_cursor(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_many", status="active"))
    response = await client.post(
        "/api/v1/workflows/wf_many/run/batch",
        json={"runs": [{"input": {"n": i}} for i in range(51)]},
    )
    assert response.status_code == 200, response.text
    await sign_in(browser)

    first = await browser.get("/ui/runs")
    found = re.search(r'href="(/ui/runs\?[^"]*cursor=[^"]+)" rel="next"', first.text)
    assert found, first.text
    second = await browser.get(found.group(1).replace("&amp;", "&"))

    assert second.status_code == 200
    assert first.text.count('<a href="/ui/runs/run_') == 50
    assert second.text.count('<a href="/ui/runs/run_') == 1
    assert 'rel="next"' not in second.text


async def test_runs_list_unknown_status_is_a_400_page(browser: httpx.AsyncClient) -> None:
    await sign_in(browser)

    response = await browser.get("/ui/runs", params={"status": "<b>nope</b>"})

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "<b>nope</b>" not in response.text
    assert "&lt;b&gt;nope&lt;/b&gt;" in response.text


async def test_run_page_shows_steps_and_escapes_input(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    run_id = await run_of(client, "wf_fast", {"n": "<script>alert(1)</script>"})
    await wait_until(lambda: ended(client, run_id))
    await sign_in(browser)

    response = await browser.get(f"/ui/runs/{run_id}")

    assert response.status_code == 200
    text = response.text
    assert f"<title>Run {run_id}" in text
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<code>only</code>" in text
    assert "completed" in text
    assert "Cancel run" not in text  # it has ended


async def test_run_of_another_project_is_a_404_page(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    run_id = await run_of(client, "wf_fast", {"n": 1})
    project = await client.post("/api/v1/projects", json={"name": "Other"})
    assert project.status_code == 201, project.text
    other = await create_key(client, ["admin"], projectId=project.json()["data"]["id"])
    await sign_in(browser, other["key"])

    response = await browser.get(f"/ui/runs/{run_id}")
    listed = await browser.get("/ui/runs")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Run not found" in response.text
    assert run_id not in listed.text


async def test_cancel_through_the_form(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, SLOW)
    run_id = await run_of(client, "wf_slow", {})
    await sign_in(browser)
    page = await browser.get(f"/ui/runs/{run_id}")
    assert "Cancel run" in page.text

    refused = await browser.post(f"/ui/runs/{run_id}/cancel", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]["status"] != "canceled"

    response = await browser.post(f"/ui/runs/{run_id}/cancel", data={"csrf": csrf_of(page)})

    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/runs/{run_id}"
    assert (await client.get(f"/api/v1/runs/{run_id}")).json()["data"]["status"] == "canceled"
    after = await browser.get(f"/ui/runs/{run_id}")
    assert "canceled" in after.text
    assert "Cancel run" not in after.text


async def test_cancel_of_an_ended_run_says_so(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_fast"))
    run_id = await run_of(client, "wf_fast", {"n": 1})
    await sign_in(browser)
    token = csrf_of(await browser.get(f"/ui/runs/{run_id}"))  # the sign-out form's token
    await wait_until(lambda: ended(client, run_id))

    response = await browser.post(f"/ui/runs/{run_id}/cancel", data={"csrf": token})

    assert response.status_code == 409
    assert "already ended with status completed" in response.text


async def test_stylesheet_is_served_locally(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/ui/static/monitor.css")

    assert response.status_code == 200
    assert "prefers-color-scheme: dark" in response.text
