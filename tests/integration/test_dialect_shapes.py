"""No dialect client ever sees the native envelope (DESIGN §4, docs/decisions.md "Dialects"):
not at the bare prefix, not with a NUL in the path, not with a stray trailing slash — and a
stray slash is never answered with a redirect built from the request's Host header."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import create_workflow, simple_workflow


def _shape(body: Any) -> str:
    if isinstance(body, dict) and set(body) == {"error", "message"}:
        return "pinkfish"
    if isinstance(body, dict) and set(body) == {"status", "message"}:
        return "axiom"
    if isinstance(body, dict) and set(body) == {"request", "data"} and body["data"] is None:
        return "shipyard"
    return "native"


@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("/ext", "pinkfish"),
        ("/ext%00", "pinkfish"),
        ("/ext/triggers/wf_shapes/", "pinkfish"),
        ("/ext/webhook/some-key/triggers/wf_shapes/", "pinkfish"),
        ("/api/v3", "axiom"),
        ("/api/v3%00", "axiom"),
        ("/api/v3/trigger/", "axiom"),
        ("/orgs", "shipyard"),
        ("/orgs%00", "shipyard"),
        ("/orgs/org_default/projects/prj_default/fleets/wf_shapes/fleetruns/", "shipyard"),
    ],
)
async def test_stray_paths_under_a_dialect_answer_in_its_shape_without_redirect(
    client: httpx.AsyncClient, path: str, dialect: str
) -> None:
    await create_workflow(client, simple_workflow("wf_shapes"))

    response = await client.post(path, json={}, headers={"host": "evil.example"})

    assert response.status_code in (400, 404), response.text
    assert "location" not in response.headers
    assert _shape(response.json()) == dialect, response.text


async def test_pinkfish_validation_error_names_each_failure(client: httpx.AsyncClient) -> None:
    schema = {"type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}
    await create_workflow(client, simple_workflow("wf_strict", inputSchema=schema))

    response = await client.post("/ext/triggers/wf_strict", json={"name": "Ada"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "Bad Request",
        "message": "Input validation failed: email: Required",
    }
