"""The monitor as a user drives it: sign-in, live run status, rerun, events, CSRF, projects.

The pages' hooks (labels, button names, ``data-testid``s) are the shared contract between the
monitor and these tests; see ``src/flowgate/ui/templates``.
"""

from __future__ import annotations

import json
import re

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import (
    SESSION_COOKIE,
    VIEWPORT,
    approval_workflow,
    create_workflow,
    run_status,
    run_to_end,
    send_event,
    sign_in,
    start_run,
    unique,
    wait_for_status,
)
from tests.hostile import LiveServer

#: Every ``localStorage``/``sessionStorage`` entry of the page, as one JSON text.
STORAGE_DUMP = """() => {
  const dump = (store) => Object.fromEntries(
    Array.from({length: store.length}, (_, i) => [store.key(i), store.getItem(store.key(i))]));
  return JSON.stringify({local: dump(window.localStorage), session: dump(window.sessionStorage)});
}"""


def _waiting_run(api: httpx.Client) -> tuple[str, str]:
    """A run that waits for an event (perhaps not there yet): (run id, event key)."""
    workflow = create_workflow(api, approval_workflow(unique("wf_approve")))
    order = unique("order")
    return start_run(api, workflow["id"], {"orderId": order}), f"approval-{order}"


def _open_run(page: Page, run_id: str) -> None:
    answer = page.goto(f"/ui/runs/{run_id}")
    assert answer is not None
    assert answer.status == 200, answer.status


# 1. Sign-in --------------------------------------------------------------------------------------


def test_sign_in_with_wrong_key_shows_error_and_sets_no_cookie(
    page: Page, context: BrowserContext
) -> None:
    wrong_key = "fgk_not_a_real_key_0000000000000000"
    sign_in(page, wrong_key)

    expect(page.get_by_role("alert")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    expect(page.get_by_label("API key")).to_be_empty()
    assert wrong_key not in page.content()
    assert [c for c in context.cookies() if c["name"] == SESSION_COOKIE] == []


def test_sign_in_lands_on_monitor_with_strict_httponly_cookie_and_no_key_in_pages(
    page: Page, context: BrowserContext, api: httpx.Client
) -> None:
    run_id, _ = _waiting_run(api)

    sign_in(page)

    expect(page).to_have_url(re.compile(r"/ui/overview$"))
    cookies = [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert ADMIN_KEY not in cookie["value"]
    assert SESSION_COOKIE not in page.evaluate("document.cookie")
    for path in ("/ui/overview", "/ui/runs", f"/ui/runs/{run_id}", "/ui/workflows", "/ui/events"):
        answer = page.goto(path)
        assert answer is not None
        assert answer.status == 200, (path, answer.status)
        assert ADMIN_KEY not in page.content(), path
        assert ADMIN_KEY not in page.evaluate(STORAGE_DUMP), path


# 2. A run's status changes live ------------------------------------------------------------------


def test_run_page_status_goes_from_waiting_to_completed_without_reload(
    signed_in: Page, api: httpx.Client
) -> None:
    page = signed_in
    run_id, event_key = _waiting_run(api)
    _open_run(page, run_id)
    page.evaluate("window.flowgateMarker = 'same document'")
    url = page.url
    status = page.get_by_test_id("run-status")

    expect(status).to_have_text("waiting")
    send_event(api, event_key, {"approved": True})

    expect(status).to_have_text("completed")
    assert page.evaluate("window.flowgateMarker") == "same document"
    assert page.url == url


# 3. Rerun from the failed step -------------------------------------------------------------------


def test_rerun_from_failed_step_opens_new_run_linking_the_original(
    signed_in: Page, api: httpx.Client
) -> None:
    page = signed_in
    workflow = create_workflow(
        api,
        {
            "id": unique("wf_rerun"),
            "name": unique("Rerun me"),
            "steps": [
                {"id": "prepare", "type": "transform", "config": {"mapping": {"ok": True}}},
                {"id": "boom", "type": "fail", "config": {"message": "broken on purpose"}},
            ],
        },
    )
    failed = run_to_end(api, workflow["id"], {})
    assert failed["status"] == "failed"
    _open_run(page, failed["id"])

    page.get_by_role("button", name="Rerun from failed step").click()

    expect(page).not_to_have_url(re.compile(rf"/ui/runs/{failed['id']}$"))
    expect(page).to_have_url(re.compile(r"/ui/runs/run_[^/]+$"))
    expect(page.get_by_text("Rerun of")).to_be_visible()
    original = page.get_by_role("link", name=failed["id"])
    expect(original).to_have_attribute("href", f"/ui/runs/{failed['id']}")
    original.click()
    expect(page).to_have_url(re.compile(rf"/ui/runs/{failed['id']}$"))


# 4. Sending an event from the events page --------------------------------------------------------


def test_event_sent_from_events_page_completes_the_waiting_run(
    signed_in: Page, context: BrowserContext, api: httpx.Client
) -> None:
    run_id, event_key = _waiting_run(api)
    watcher = context.new_page()
    _open_run(watcher, run_id)
    expect(watcher.get_by_test_id("run-status")).to_have_text("waiting")
    page = signed_in
    page.goto("/ui/events")
    expect(page.locator(f'[data-testid="event-row"][data-event-key="{event_key}"]')).to_be_visible()

    page.get_by_label("Event key").fill(event_key)
    page.get_by_label("Payload (JSON)").fill(json.dumps({"approved": True}))
    page.get_by_role("button", name="Send event").click()

    expect(watcher.get_by_test_id("run-status")).to_have_text("completed")
    expect(page.get_by_role("link", name=run_id)).to_be_visible()
    output = api.get(f"/api/v1/runs/{run_id}").json()["data"]["output"]
    assert output == {"approved": True}


# 5. CSRF -----------------------------------------------------------------------------------------


def test_cancel_without_or_with_wrong_csrf_token_is_403_and_run_goes_on(
    signed_in: Page, context: BrowserContext, api: httpx.Client
) -> None:
    run_id, _ = _waiting_run(api)
    _open_run(signed_in, run_id)
    expect(signed_in.get_by_test_id("run-status")).to_have_text("waiting")
    token = signed_in.locator('input[name="csrf"]').first.get_attribute("value")
    assert token
    cancel = f"/ui/runs/{run_id}/cancel"

    missing = context.request.post(cancel, form={}, max_redirects=0)
    wrong = context.request.post(cancel, form={"csrf": token[::-1]}, max_redirects=0)
    after_refusals = run_status(api, run_id)
    right = context.request.post(cancel, form={"csrf": token}, max_redirects=0)

    assert (missing.status, wrong.status) == (403, 403)
    assert after_refusals == "waiting"
    # The same request with the session's own token does cancel: the cookie was sent.
    assert right.status == 303, right.status
    assert run_status(api, run_id) == "canceled"


# 6. Projects -------------------------------------------------------------------------------------


def test_run_of_another_project_is_404_for_this_session(
    signed_in: Page, api: httpx.Client, live_server: LiveServer
) -> None:
    project = api.post("/api/v1/projects", json={"name": unique("Other")})
    assert project.status_code == 201, project.text
    key = api.post(
        "/api/v1/keys",
        json={"name": "other", "scopes": ["admin"], "projectId": project.json()["data"]["id"]},
    )
    assert key.status_code == 201, key.text
    marker = unique("secret_of_other_project")
    with live_server.client(key.json()["data"]["key"]) as other:
        workflow = create_workflow(
            other,
            {
                "id": unique("wf_other"),
                "name": "Other project's",
                "steps": [
                    {"id": "echo", "type": "transform", "config": {"mapping": {"m": marker}}}
                ],
            },
        )
        foreign = run_to_end(other, workflow["id"], {"marker": marker})

    answer = signed_in.goto(f"/ui/runs/{foreign['id']}")

    assert answer is not None
    assert answer.status == 404
    assert marker not in signed_in.content()


# Contract extras: bulk cancel, the workflow page's run form --------------------------------------


def test_bulk_cancel_states_the_count_and_cancels_the_matching_runs(
    signed_in: Page, api: httpx.Client
) -> None:
    page = signed_in
    workflow = create_workflow(api, approval_workflow(unique("wf_bulk")))
    runs = [start_run(api, workflow["id"], {"orderId": unique("order")}) for _ in range(2)]
    for run_id in runs:
        wait_for_status(api, run_id, "waiting")
    page.goto(f"/ui/runs?workflowId={workflow['id']}")
    expect(page.get_by_test_id("run-row")).to_have_count(2)

    page.get_by_role("button", name="Cancel matching runs…").click()
    expect(page.get_by_role("heading", name="Cancel 2 runs?")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(re.compile(r"/ui/runs"))
    assert [run_status(api, run_id) for run_id in runs] == ["canceled", "canceled"]


def test_start_run_form_opens_the_new_run_and_pause_refuses_runs(
    signed_in: Page, api: httpx.Client
) -> None:
    page = signed_in
    customer = unique("cus")
    workflow = create_workflow(
        api,
        {
            "id": unique("wf_form"),
            "name": unique("Greet customer"),
            "inputSchema": {
                "type": "object",
                "required": ["customerName"],
                "properties": {"customerName": {"type": "string"}},
            },
            "steps": [
                {
                    "id": "greet",
                    "type": "transform",
                    "config": {"mapping": {"greeting": "Hello {{input.customerName}}"}},
                }
            ],
        },
    )
    page.goto(f"/ui/workflows/{workflow['id']}")

    page.get_by_label("customerName").fill(customer)
    page.get_by_role("button", name="Start run").click()

    expect(page).to_have_url(re.compile(r"/ui/runs/run_[^/]+$"))
    expect(page.get_by_test_id("run-status")).to_have_text("completed")
    expect(page.get_by_text(f"Hello {customer}").first).to_be_visible()
    page.goto(f"/ui/workflows/{workflow['id']}")
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_test_id("workflow-status")).to_have_text("paused")
    expect(page.get_by_text("a run is refused until it is activated")).to_be_visible()
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_test_id("workflow-status")).to_have_text("active")


# Dark mode and the keyboard -------------------------------------------------------------------


def _quick_workflow(workflow_id: str) -> dict[str, object]:
    step = {"id": "done", "type": "transform", "config": {"mapping": {"ok": True}}}
    return {"id": workflow_id, "name": workflow_id, "steps": [step]}


def _background(page: Page) -> tuple[int, ...]:
    color = page.evaluate("getComputedStyle(document.body).backgroundColor")
    return tuple(int(part) for part in re.findall(r"\d+", str(color))[:3])


def test_monitor_follows_the_systems_dark_mode(
    browser: Browser, live_server: LiveServer, api: httpx.Client
) -> None:
    run_to_end(api, create_workflow(api, _quick_workflow(unique("wf_dark")))["id"], {})
    shades = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(
            base_url=live_server.url, viewport=VIEWPORT, color_scheme=scheme
        )
        page = context.new_page()
        sign_in(page)
        page.goto("/ui/runs")
        shades[scheme] = _background(page)
        context.close()

    assert sum(shades["light"]) > 600, shades
    assert sum(shades["dark"]) < 150, shades


def test_keyboard_alone_signs_in_and_opens_a_run(page: Page, api: httpx.Client) -> None:
    run = run_to_end(api, create_workflow(api, _quick_workflow(unique("wf_keys")))["id"], {})
    page.goto("/ui/login")

    expect(page.get_by_label("API key")).to_be_focused()  # autofocus, once the page settled
    page.keyboard.type(ADMIN_KEY)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/runs$"))
    link = page.get_by_role("link", name=run["id"])
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == run["id"]:
            break
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(rf"/ui/runs/{run['id']}$"))
    expect(link).to_have_count(0)
    expect(page.get_by_test_id("run-status")).to_have_text("completed")
