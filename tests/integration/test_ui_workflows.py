"""The monitor's workflows pages over HTTP: the list, a workflow's page (YAML, versions and diffs,
triggers and curl lines, inbox and replay), Activate / Pause and the run form."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from flowgate.settings import Settings
from tests.conftest import ADMIN_KEY, ThreadedServer, wait_until
from tests.integration.conftest import create_workflow, simple_workflow
from tests.integration.test_ui import create_key, csrf_of, ended, run_of, sign_in

PUBLIC_URL = "http://flows.example.test:8080"

ORDER: dict[str, Any] = {
    "id": "wf_order",
    "name": "Process order",
    "status": "active",
    "inputSchema": {
        "type": "object",
        "required": ["customerId", "count"],
        "properties": {
            "customerId": {"type": "string", "description": "Who <b>ordered</b>"},
            "count": {"type": "integer", "minimum": 1},
            "price": {"type": "number"},
            "express": {"type": "boolean"},
            "currency": {"type": "string", "enum": ["usd", "eur"], "default": "usd"},
            "items": {"type": "array", "items": {"type": "string"}},
        },
    },
    "steps": [
        {"id": "total", "type": "transform", "config": {"mapping": {"n": "{{input.count}}"}}}
    ],
}


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    """A public URL that is not the server's own, so that absolute URLs are seen to use it (plain
    http, so that the session cookie is not ``Secure`` and the test client sends it)."""
    return make_settings(public_url=PUBLIC_URL)


@pytest.fixture
async def browser(server: ThreadedServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no API key: it keeps cookies like a browser and does not follow redirects."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


def text_of(page: httpx.Response, testid: str) -> list[str]:
    """The unescaped text of each element carrying ``data-testid=testid`` (no nested tags)."""
    found = re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</', page.text, flags=re.DOTALL)
    return [html.unescape(part) for part in found]


def row_of(page: httpx.Response, workflow_id: str) -> str:
    found = re.search(
        rf'<tr data-testid="workflow-row" data-workflow-id="{workflow_id}">(.*?)</tr>',
        page.text,
        flags=re.DOTALL,
    )
    assert found, page.text
    return found.group(1)


async def runs_of(client: httpx.AsyncClient, workflow_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/runs", params={"workflowId": workflow_id})
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()["data"]
    return runs


async def status_of(client: httpx.AsyncClient, workflow_id: str) -> str:
    status: str = (await client.get(f"/api/v1/workflows/{workflow_id}")).json()["data"]["status"]
    return status


# --- the list -----------------------------------------------------------------------------------


async def test_workflows_list_shows_status_version_and_last_run(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_ran"))
    await create_workflow(client, simple_workflow("wf_idle", status="draft"))
    await run_of(client, "wf_ran", {"n": 1})
    last = await run_of(client, "wf_ran", {"n": 2})
    await wait_until(lambda: ended(client, last))
    await sign_in(browser)

    page = await browser.get("/ui/workflows")

    assert page.status_code == 200
    assert "<title>Workflows" in page.text
    ran, idle = row_of(page, "wf_ran"), row_of(page, "wf_idle")
    assert 'href="/ui/workflows/wf_ran"' in ran
    assert "wf-status-active" in ran
    assert "v1" in ran
    assert f'href="/ui/runs/{last}"' in ran
    assert "status-completed" in ran
    assert "wf-status-draft" in idle
    assert "never run" in idle


async def test_workflows_list_needs_sign_in(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/ui/workflows")

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fworkflows"


# --- a workflow's page --------------------------------------------------------------------------


async def test_workflow_page_shows_escaped_yaml_and_a_diff_after_a_new_version(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    first = simple_workflow("wf_doc", description="<script>alert(1)</script>")
    await create_workflow(client, first)
    second = {**first, "steps": [{**first["steps"][0], "config": {"mapping": {"m": "changed"}}}]}
    updated = await client.put("/api/v1/workflows/wf_doc", json=second)
    assert updated.status_code == 200, updated.text
    await sign_in(browser)

    page = await browser.get("/ui/workflows/wf_doc")
    diff = await browser.get("/ui/workflows/wf_doc", params={"diff": "1..2"})

    assert page.status_code == 200
    assert "<title>Workflow doc" in page.text
    assert "<script>alert" not in page.text
    [yaml] = text_of(page, "definition-yaml")
    assert yaml.index("name: doc") < yaml.index("description:") < yaml.index("steps:")
    assert "description: <script>alert(1)</script>" in yaml
    assert "m: changed" in yaml
    assert 'href="/ui/workflows/wf_doc?diff=1..2#diff"' in page.text
    assert diff.status_code == 200
    assert re.search(
        r'<span class="diff-removed">-\s+n: &#39;\{\{input.n\}\}&#39;</span>', diff.text
    )
    assert re.search(r'<span class="diff-added">\+\s+m: changed</span>', diff.text)
    assert '<span class="diff-context">     type: transform</span>' in diff.text


async def test_workflow_page_unknown_diff_version_is_a_400_page(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_doc"))
    await sign_in(browser)

    missing = await browser.get("/ui/workflows/wf_doc", params={"diff": "1..7"})
    garbled = await browser.get("/ui/workflows/wf_doc", params={"diff": "<b>"})

    assert (missing.status_code, garbled.status_code) == (400, 400)
    assert "This workflow has no version 7" in missing.text
    assert "diff must name two versions" in garbled.text
    assert "<b>" not in garbled.text.split("<main>")[1]


async def test_workflow_page_by_exact_name_shows_curl_and_webhook_url_but_not_the_secret(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, ORDER)
    created = await client.post(
        "/api/v1/workflows/wf_order/triggers", json={"type": "webhook", "signatureStyle": "github"}
    )
    assert created.status_code == 201, created.text
    hook = created.json()["data"]
    await sign_in(browser)

    page = await browser.get("/ui/workflows/Process order")

    assert page.status_code == 200
    assert hook["url"].startswith(f"{PUBLIC_URL}/hooks/")
    assert text_of(page, "webhook-url") == [hook["url"]]
    assert hook["signingSecret"] not in page.text
    api, webhook = text_of(page, "curl")
    command, _, body = api.partition("  -d ")
    assert command == (
        f"curl -X POST {PUBLIC_URL}/api/v1/workflows/wf_order/run \\\n"
        '  -H "x-api-key: $FLOWGATE_API_KEY" \\\n'
        "  -H 'content-type: application/json' \\\n"
    )
    assert (body[0], body[-1]) == ("'", "'")
    assert json.loads(body[1:-1]) == {
        "input": {
            "customerId": "string",
            "count": 0,
            "price": 0,
            "express": False,
            "currency": "usd",
            "items": ["string"],
        }
    }
    assert webhook.startswith(f"curl -X POST {hook['url']} \\\n")
    assert "x-api-key" not in webhook
    assert 'data-copy="curl-api"' in page.text
    assert '<script src="/ui/static/workflows.js" defer></script>' in page.text
    assert (await browser.get("/ui/static/workflows.js")).status_code == 200


async def test_workflow_page_shows_a_schedule_with_its_next_run(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_nightly"))
    created = await client.post(
        "/api/v1/workflows/wf_nightly/triggers",
        json={
            "type": "schedule",
            "cron": "0 3 * * *",
            "timezone": "Europe/Paris",
            "input": {"n": 3},
        },
    )
    assert created.status_code == 201, created.text
    await sign_in(browser)

    page = await browser.get("/ui/workflows/wf_nightly")

    assert "<code>0 3 * * *</code>" in page.text
    assert "Europe/Paris" in page.text
    assert f'<time datetime="{created.json()["data"]["nextRunAt"]}">' in page.text
    assert """-d '{"input":{"n":3}}'""" in text_of(page, "curl")[1]


async def test_workflow_of_another_project_is_a_404_page(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, ORDER)
    project = await client.post("/api/v1/projects", json={"name": "Other"})
    assert project.status_code == 201, project.text
    other = await create_key(client, ["admin"], projectId=project.json()["data"]["id"])
    await sign_in(browser, other["key"])
    token = csrf_of(await browser.get("/ui/workflows"))

    page = await browser.get("/ui/workflows/wf_order")
    listed = await browser.get("/ui/workflows")
    run = await browser.post(
        "/ui/workflows/wf_order/run", data={"csrf": token, "input.customerId": "c"}
    )
    paused = await browser.post("/ui/workflows/wf_order/pause", data={"csrf": token})

    assert (page.status_code, run.status_code, paused.status_code) == (404, 404, 404)
    assert page.headers["content-type"].startswith("text/html")
    assert "Workflow not found" in page.text
    assert "wf_order" not in listed.text
    assert await runs_of(client, "wf_order") == []
    assert await status_of(client, "wf_order") == "active"


# --- activate and pause ---------------------------------------------------------------------------


async def test_activate_and_pause_need_the_csrf_token(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_toggle", status="draft"))
    await sign_in(browser)
    page = await browser.get("/ui/workflows/wf_toggle")
    assert ">Activate</button>" in page.text
    assert ">Pause</button>" not in page.text

    missing = await browser.post("/ui/workflows/wf_toggle/activate", data={})
    forged = await browser.post("/ui/workflows/wf_toggle/activate", data={"csrf": "forged"})
    assert (missing.status_code, forged.status_code) == (403, 403)
    assert await status_of(client, "wf_toggle") == "draft"

    activated = await browser.post("/ui/workflows/wf_toggle/activate", data={"csrf": csrf_of(page)})
    assert activated.status_code == 303
    assert activated.headers["location"] == "/ui/workflows/wf_toggle"
    assert await status_of(client, "wf_toggle") == "active"
    page = await browser.get("/ui/workflows/wf_toggle")
    assert ">Pause</button>" in page.text
    assert ">Activate</button>" not in page.text

    paused = await browser.post("/ui/workflows/wf_toggle/pause", data={"csrf": csrf_of(page)})
    assert paused.status_code == 303
    assert await status_of(client, "wf_toggle") == "paused"
    assert text_of(await browser.get("/ui/workflows/wf_toggle"), "workflow-status") == ["paused"]


async def test_pause_of_a_draft_says_why_on_the_page(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_toggle", status="draft"))
    await sign_in(browser)
    token = csrf_of(await browser.get("/ui/workflows/wf_toggle"))

    response = await browser.post("/ui/workflows/wf_toggle/pause", data={"csrf": token})

    assert response.status_code == 409
    assert text_of(response, "notice") == ["Only an active workflow can be paused (it is draft)"]


# --- the run form -------------------------------------------------------------------------------


async def test_run_form_has_one_labelled_field_per_property(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, ORDER)
    await sign_in(browser)

    page = (await browser.get("/ui/workflows/wf_order")).text

    assert re.search(r'<label for="run-input-0">customerId <span class="required">', page)
    assert 'id="run-input-0" name="input.customerId" type="text"' in page
    assert 'name="input.count" type="number" step="1"' in page
    assert 'name="input.price" type="number" step="any"' in page
    assert re.search(r'type="checkbox" id="run-input-\d" name="input.express" value="true"', page)
    assert re.search(r'<select id="run-input-\d" name="input.currency"', page)
    assert '<option value="0" selected>usd</option>' in page
    assert re.search(r'<textarea id="run-input-\d" name="input.items"', page)
    assert "Who &lt;b&gt;ordered&lt;/b&gt;" in page
    assert 'name="rawInput"' not in page
    assert ">Start run</button>" in page


async def test_run_form_valid_submit_starts_a_ui_run_and_redirects_to_it(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, ORDER)
    await sign_in(browser)
    token = csrf_of(await browser.get("/ui/workflows/wf_order"))

    response = await browser.post(
        "/ui/workflows/wf_order/run",
        data={
            "csrf": token,
            "input.customerId": "c-1",
            "input.count": "3",
            "input.price": "2.5",
            "input.express": "true",
            "input.currency": "1",
            "input.items": '["a", "b"]',
        },
    )

    assert response.status_code == 303, response.text
    [run] = await runs_of(client, "wf_order")
    assert response.headers["location"] == f"/ui/runs/{run['id']}"
    assert run["source"] == "ui"
    assert run["input"] == {
        "customerId": "c-1",
        "count": 3,
        "price": 2.5,
        "express": True,
        "currency": "eur",
        "items": ["a", "b"],
    }


async def test_run_form_invalid_submit_shows_field_errors_and_starts_nothing(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, ORDER)
    await sign_in(browser)
    token = csrf_of(await browser.get("/ui/workflows/wf_order"))

    unparsable = await browser.post(
        "/ui/workflows/wf_order/run",
        data={"csrf": token, "input.customerId": "c", "input.count": "2", "input.items": "[1,"},
    )
    refused = await browser.post(
        "/ui/workflows/wf_order/run", data={"csrf": token, "input.count": "0", "input.price": ""}
    )

    assert unparsable.status_code == 400
    assert [e.startswith("not valid JSON") for e in text_of(unparsable, "field-error")] == [True]
    assert re.search(r'id="(run-input-\d)" name="input.items"', unparsable.text)
    items_id = re.findall(r'id="(run-input-\d)" name="input.items"', unparsable.text)[0]
    assert f'aria-describedby="{items_id}-error"' in unparsable.text
    assert 'value="c"' in unparsable.text  # what was typed stays
    assert refused.status_code == 400
    assert text_of(refused, "notice") == ["Input validation failed: see the fields below"]
    errors = re.findall(
        r'id="(run-input-\d)-error" data-testid="field-error">([^<]*)<', refused.text
    )
    assert errors[0] == ("run-input-0", "Required")
    assert errors[1][0] == "run-input-1"
    assert "1" in errors[1][1]  # the minimum, in the validator's words
    assert await runs_of(client, "wf_order") == []


async def test_run_form_on_a_paused_workflow_shows_the_reason(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_held", status="active"))
    assert (await client.post("/api/v1/workflows/wf_held/pause")).status_code == 200
    await sign_in(browser)
    page = await browser.get("/ui/workflows/wf_held")

    response = await browser.post(
        "/ui/workflows/wf_held/run", data={"csrf": csrf_of(page), "rawInput": '{"n": 1}'}
    )

    assert response.status_code == 400
    assert text_of(response, "notice") == ["Workflow must be active to run. Current status: paused"]
    assert await runs_of(client, "wf_held") == []


async def test_run_form_without_properties_takes_raw_json(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_raw"))
    await sign_in(browser)
    page = await browser.get("/ui/workflows/wf_raw")
    assert '<label for="run-input-raw">Input (JSON)' in page.text

    wrong = await browser.post(
        "/ui/workflows/wf_raw/run", data={"csrf": csrf_of(page), "rawInput": "[1, 2]"}
    )
    right = await browser.post(
        "/ui/workflows/wf_raw/run", data={"csrf": csrf_of(page), "rawInput": '{"n": 5}'}
    )

    assert wrong.status_code == 400
    assert text_of(wrong, "field-error") == ['must be a JSON object, like {"name": "value"}']
    assert right.status_code == 303
    [run] = await runs_of(client, "wf_raw")
    assert (run["input"], run["source"]) == ({"n": 5}, "ui")


async def test_run_form_needs_the_csrf_token(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_raw"))
    await sign_in(browser)

    response = await browser.post("/ui/workflows/wf_raw/run", data={"rawInput": "{}"})

    assert response.status_code == 403
    assert await runs_of(client, "wf_raw") == []


# --- the inbox ------------------------------------------------------------------------------------


async def test_inbox_replays_a_webhook_delivery_into_a_new_run(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_hooked"))
    created = await client.post("/api/v1/workflows/wf_hooked/triggers", json={"type": "webhook"})
    assert created.status_code == 201, created.text
    trigger = created.json()["data"]
    sent = await client.post(urlsplit(trigger["url"]).path, json={"order": "<o-1>"})
    assert sent.status_code == 202, sent.text
    first_run = sent.json()["data"]["runId"]
    await sign_in(browser)
    page = await browser.get("/ui/workflows/wf_hooked")
    [delivery_id] = re.findall(r'data-testid="delivery-row" data-delivery-id="([^"]+)"', page.text)
    assert f'href="/ui/runs/{first_run}"' in page.text
    assert "&lt;o-1&gt;" in page.text

    refused = await browser.post(
        f"/ui/workflows/wf_hooked/deliveries/{delivery_id}/replay",
        data={"csrf": "forged", "trigger": trigger["id"]},
    )
    response = await browser.post(
        f"/ui/workflows/wf_hooked/deliveries/{delivery_id}/replay",
        data={"csrf": csrf_of(page), "trigger": trigger["id"]},
    )

    assert refused.status_code == 403
    assert response.status_code == 303, response.text
    runs = await runs_of(client, "wf_hooked")
    assert len(runs) == 2
    new = next(r for r in runs if r["id"] != first_run)
    assert response.headers["location"] == f"/ui/runs/{new['id']}"
    assert new["source"] == "webhook"
    assert new["input"]["body"] == {"order": "<o-1>"}
    after = await browser.get("/ui/workflows/wf_hooked")
    assert after.text.count('data-testid="delivery-row"') == 2
    assert f"replay of {delivery_id}" in after.text


async def test_inbox_replays_a_dialect_call_with_its_dialect_as_source(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_rows"))
    body = {"key": ADMIN_KEY, "name": "rows", "data": [["n"], ["1"]]}
    started = await client.post("/api/v3/trigger", json=body)
    assert started.status_code == 200, started.text
    await sign_in(browser)
    page = await browser.get("/ui/workflows/wf_rows")
    [delivery_id] = re.findall(r'data-testid="delivery-row" data-delivery-id="([^"]+)"', page.text)
    assert ADMIN_KEY not in page.text
    assert 'name="trigger"' not in page.text

    response = await browser.post(
        f"/ui/workflows/wf_rows/deliveries/{delivery_id}/replay", data={"csrf": csrf_of(page)}
    )

    assert response.status_code == 303, response.text
    new = next(
        r for r in await runs_of(client, "wf_rows") if r["id"] != started.headers["x-run-id"]
    )
    assert response.headers["location"] == f"/ui/runs/{new['id']}"
    assert (new["source"], new["input"]["rows"]) == ("axiom", [{"n": "1"}])


async def test_run_form_submitted_twice_starts_one_run(
    client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    await create_workflow(client, simple_workflow("wf_raw"))
    await sign_in(browser)
    page = await browser.get("/ui/workflows/wf_raw")
    [key] = re.findall(r'name="idempotencyKey" value="([^"]+)"', page.text)
    form = {"csrf": csrf_of(page), "idempotencyKey": key, "rawInput": '{"n": 1}'}

    first = await browser.post("/ui/workflows/wf_raw/run", data=form)
    again = await browser.post("/ui/workflows/wf_raw/run", data=form)
    changed = await browser.post("/ui/workflows/wf_raw/run", data={**form, "rawInput": "{}"})
    fresh = await browser.get("/ui/workflows/wf_raw")

    assert (first.status_code, again.status_code) == (303, 303)
    assert again.headers["location"] == first.headers["location"]
    assert changed.status_code == 409
    assert text_of(changed, "notice") == [
        "This form already started a run with other values: reload the page first"
    ]
    assert len(await runs_of(client, "wf_raw")) == 1
    assert f'value="{key}"' not in fresh.text
