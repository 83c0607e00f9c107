"""Helpers for integration tests: creating workflows and runs through the real API, and the
loopback services outbound steps call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests import targets
from tests.conftest import ThreadedServer
from tests.pg import PostgresCluster

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


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables yet (to test migrations from an older revision)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    name = f"m_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        engine = create_async_engine(
            cluster.url.replace("postgresql://", "postgresql+asyncpg://"),
            isolation_level="AUTOCOMMIT",
        )
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    asyncio.run(create())
    return cluster.url_for(name)
