"""The main pages with data in them, at 1366x768, and their screenshots for the docs.

The pages are always rendered and checked; the screenshots go to ``docs/images/`` only when
``FLOWGATE_SCREENSHOTS=1`` (``make screenshots``), otherwise to a temp directory, so
that an ordinary test run leaves the git tree clean.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests import targets
from tests.conftest import ThreadedServer
from tests.e2e.conftest import (
    approval_workflow,
    create_workflow,
    run_to_end,
    start_run,
    unique,
    wait_for_status,
)

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
RETRIED_RUNS = 3
FAILED_RUNS = 2
WAITING_RUNS = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """What the pages show: an order workflow whose http step is retried in every run, a failing
    workflow and runs waiting for events."""

    order_workflow: str
    retried_run: str
    waiting_keys: list[str]


@pytest.fixture(scope="module")
def flaky_target() -> Iterator[str]:
    """``/flaky/{key}``: 500 twice per key, then 200."""
    with ThreadedServer(targets.app) as running:
        yield running.url


@pytest.fixture(scope="module")
def sample(api: httpx.Client, flaky_target: str) -> Sample:
    order = create_workflow(api, _order_workflow(unique("wf_order"), flaky_target))
    retried = [
        run_to_end(api, order["id"], {"customerId": f"cus_{n}", "amount": 20.5 * n})
        for n in range(1, RETRIED_RUNS + 1)
    ]
    assert {run["status"] for run in retried} == {"completed"}
    charge = create_workflow(
        api,
        {
            "id": unique("wf_charge"),
            "name": "Charge card",
            "steps": [{"id": "charge", "type": "fail", "config": {"message": "Card declined"}}],
        },
    )
    for _ in range(FAILED_RUNS):
        assert run_to_end(api, charge["id"], {})["status"] == "failed"
    approval = create_workflow(api, approval_workflow(unique("wf_approval")))
    orders = [unique("order") for _ in range(WAITING_RUNS)]
    for order_id in orders:
        wait_for_status(api, start_run(api, approval["id"], {"orderId": order_id}), "waiting")
    return Sample(
        order_workflow=order["id"],
        retried_run=retried[-1]["id"],
        waiting_keys=[f"approval-{order_id}" for order_id in orders],
    )


def _order_workflow(workflow_id: str, target: str) -> dict[str, object]:
    return {
        "id": workflow_id,
        "name": "Process customer order",
        "inputSchema": {
            "type": "object",
            "required": ["customerId", "amount"],
            "properties": {
                "customerId": {"type": "string", "description": "Stripe customer id"},
                "amount": {"type": "number"},
                "express": {"type": "boolean", "default": False},
            },
        },
        "steps": [
            {
                "id": "total",
                "type": "transform",
                "config": {"mapping": {"total": "{{input.amount | times: 1.08 | round: 2}}"}},
            },
            {
                "id": "invoice",
                "type": "http",
                "retry": {"maxAttempts": 3, "backoff": "fixed", "initialDelayMs": 200},
                "config": {
                    "url": f"{target}/flaky/{{{{run.id}}}}",
                    "query": {"total": "{{steps.total.output.total}}"},
                },
            },
            {
                "id": "receipt",
                "type": "transform",
                "config": {"mapping": {"customer": "{{input.customerId}}", "paid": True}},
            },
        ],
    }


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    if os.environ.get("FLOWGATE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


def _shoot(page: Page, directory: Path, name: str, *, whole: bool = False) -> None:
    """The viewport (1366x768), or with ``whole`` the page's full height at that width; the page
    must fit the width (no horizontal scrolling)."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name}: {overflow} px wider than the 1366 px window"
    path = directory / f"{name}.png"
    page.screenshot(path=path, animations="disabled", full_page=whole)
    assert path.stat().st_size > 0


def test_main_pages_with_data_render_at_1366x768(
    signed_in: Page, sample: Sample, shots: Path
) -> None:
    page = signed_in
    page.emulate_media(color_scheme="light")

    page.goto("/ui/overview")
    expect(page.get_by_role("img", name="Runs per minute")).to_be_visible()
    expect(page.get_by_role("img", name="Failure rate")).to_be_visible()
    _shoot(page, shots, "overview", whole=True)

    page.goto("/ui/runs")
    expect(page.get_by_test_id("status-counts")).to_be_visible()
    expect(page.get_by_test_id("run-row").nth(RETRIED_RUNS + FAILED_RUNS - 1)).to_be_visible()
    _shoot(page, shots, "runs")

    page.goto(f"/ui/runs/{sample.retried_run}")
    expect(page.get_by_test_id("run-status")).to_have_text("completed")
    invoice_bars = page.locator('[data-testid="attempt-bar"][data-step="invoice"]')
    expect(invoice_bars).to_have_count(3)
    _shoot(page, shots, "run", whole=True)

    page.goto(f"/ui/workflows/{sample.order_workflow}")
    expect(page.get_by_role("button", name="Start run")).to_be_visible()
    _shoot(page, shots, "workflow")

    page.goto("/ui/events")
    for key in sample.waiting_keys:
        row = page.locator(f'[data-testid="event-row"][data-event-key="{key}"]')
        expect(row.get_by_role("button", name="Cancel")).to_be_visible()
    _shoot(page, shots, "events")
