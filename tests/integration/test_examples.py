"""Every file in examples/ loads, and runs to the status it is meant to reach."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flowgate.documents import document_paths, read_document
from tests.integration.conftest import ORDER_INPUT

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED = {
    "wf_order_total": (ORDER_INPUT, "completed"),
    "wf_hello_world": ({}, "completed"),
    "wf_fails_on_purpose": ({}, "failed"),
    # Calls functions/text.py, which the server loads from ./functions (FLOWGATE_FUNCTIONS_DIR).
    "wf_slugify": ({}, "completed"),
    # Needs a stripe connection (tests/integration/test_actions.py gives it one).
    "wf_process_customer_order": (
        {"customerId": "c1", "items": [{"quantity": 1, "price": 1}]},
        "failed",
    ),
}


@pytest.mark.parametrize("path", document_paths(EXAMPLES), ids=lambda p: p.name)
async def test_example_loads_and_runs_to_expected_status(
    client: httpx.AsyncClient, path: Path
) -> None:
    definition = read_document(path)
    assert isinstance(definition, dict)
    created = await client.post("/api/v1/workflows", json={**definition, "status": "active"})
    assert created.status_code == 201, created.text
    run_input, status = EXPECTED[definition["id"]]

    response = await client.post(
        f"/api/v1/workflows/{definition['id']}/run",
        json={"input": run_input},
        headers={"x-api-wait": "true"},
    )

    assert response.json()["data"]["status"] == status


async def test_order_example_total_is_27_54(client: httpx.AsyncClient) -> None:
    definition = read_document(EXAMPLES / "order_total.yaml")
    assert isinstance(definition, dict)
    await client.post("/api/v1/workflows", json={**definition, "status": "active"})

    response = await client.post(
        "/api/v1/workflows/wf_order_total/run",
        json={"input": ORDER_INPUT},
        headers={"x-api-wait": "true"},
    )

    assert response.json()["data"]["output"] == {"subtotal": 25.5, "tax": 2.04, "total": 27.54}
