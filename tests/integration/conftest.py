"""Helpers for integration tests: creating workflows and runs through the real API, and the
loopback services outbound steps call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import targets
from tests.conftest import ThreadedServer

ORDER_INPUT = {
    "customerId": "c1",
    "items": [
        {"product": "a", "quantity": 2, "price": 10},
        {"product": "b", "quantity": 1, "price": 5.5},
    ],
}

ORDER_WORKFLOW: dict[str, Any] = {
    "id": "wf_order_total",
    "name": "Order total",
    "status": "active",
    "trigger": {"type": "api"},
    "inputSchema": {
        "type": "object",
        "required": ["customerId", "items"],
        "properties": {
            "customerId": {"type": "string"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "product": {"type": "string"},
                        "quantity": {"type": "number", "minimum": 1},
                        "price": {"type": "number", "minimum": 0},
                    },
                },
            },
            "currency": {"type": "string", "default": "usd"},
        },
    },
    "steps": [
        {
            "id": "calculate-total",
            "type": "transform",
            "name": "Calculate Order Total",
            "config": {
                "mapping": {
                    "subtotal": "{{input.items | map: 'quantity * price' | sum}}",
                    "tax": "{{input.items | map: 'quantity * price' | sum | times: 0.08}}",
                    "total": "{{input.items | map: 'quantity * price' | sum | times: 1.08}}",
                }
            },
        }
    ],
}


async def create_workflow(client: httpx.AsyncClient, definition: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/v1/workflows", json=definition)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def simple_workflow(workflow_id: str, *, status: str = "active", **extra: Any) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "name": workflow_id.removeprefix("wf_").replace("_", " "),
        "status": status,
        "steps": [{"id": "only", "type": "transform", "config": {"mapping": {"n": "{{input.n}}"}}}],
        **extra,
    }


@pytest.fixture
def target() -> Iterator[str]:
    """The loopback service of ``tests/targets.py``, its record of calls cleared."""
    targets.SEEN.clear()
    with ThreadedServer(targets.app) as running:
        yield running.url


@pytest.fixture
def other() -> Iterator[str]:
    """A second origin (another port) that must never see a step's or connection's credentials."""
    with ThreadedServer(targets.app) as running:
        yield running.url
