"""``/docs`` and ``/redoc`` served from the package (no CDN), and ``/openapi.json`` telling the
truth: security schemes, real error responses in each API's shape, no 422, dialects described."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jsonschema_rs
import pytest

from tests.conftest import ADMIN_KEY

METHODS = ("get", "put", "post", "delete", "patch")
#: Operations that take no key in a header: probes, webhook tokens, a key in the path or body.
UNSECURED = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/hooks/{token}"),
    ("post", "/hooks/{token}"),
    ("put", "/hooks/{token}"),
    ("get", "/ext/webhook/{api_key}/triggers/{trigger_id}"),
    ("post", "/ext/webhook/{api_key}/triggers/{trigger_id}"),
    ("post", "/api/v3/trigger"),
    ("post", "/api/v3/run-data"),
}
DIALECT_PREFIXES = ("/hooks/", "/ext/", "/api/v3/", "/orgs/", "/v1/")
SHAPES = {
    "/ext/": "PinkfishError",
    "/api/v3/": "AxiomError",
    "/orgs/": "ShipyardError",
    "/v1/": "StraitError",
}


class _Assets(HTMLParser):
    """The URLs of a page's scripts, stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.scripts.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.links.append(str(values["href"]))


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _url(path: str) -> str:
    """The path with every parameter filled in by a value naming nothing."""
    return re.sub(r"\{[^}]+\}", "nothing_here", path)


def _matches(doc: dict[str, Any], response: dict[str, Any], body: Any) -> bool:
    schema = response["content"]["application/json"]["schema"]
    validator = jsonschema_rs.validator_for({**schema, "components": doc["components"]})
    return bool(validator.is_valid(body))


async def _openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


@pytest.mark.parametrize(("page", "stylesheets"), [("/docs", 1), ("/redoc", 0)])
async def test_docs_page_assets_all_served_by_the_server_itself(
    client: httpx.AsyncClient, page: str, stylesheets: int
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    # No URL with a host anywhere in the page: nothing is loaded from another server.
    assert re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+", response.text) == []
    assets = _Assets()
    assets.feed(response.text)
    assert len(assets.scripts) == 1
    assert len([link for link in assets.links if link.endswith(".css")]) == stylesheets
    for url in [*assets.scripts, *assets.links]:
        assert urlsplit(url).netloc == "", url
        asset = await client.get(urljoin(page, url))
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    assert "/openapi.json" in response.text


async def test_docs_unknown_asset_is_a_404_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/static/nothing.js")
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_openapi_declares_api_key_and_bearer_schemes(client: httpx.AsyncClient) -> None:
    schemes = (await _openapi(client))["components"]["securitySchemes"]
    assert {k: v for k, v in schemes["ApiKeyAuth"].items() if k != "description"} == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    assert {k: v for k, v in schemes["BearerAuth"].items() if k != "description"} == {
        "type": "http",
        "scheme": "bearer",
    }


async def test_openapi_security_applies_to_every_operation_but_keyless_ones(
    client: httpx.AsyncClient,
) -> None:
    doc = await _openapi(client)
    unsecured = {(m, p) for m, p, op in _operations(doc) if "security" not in op}
    assert unsecured == UNSECURED
    for method, path, operation in _operations(doc):
        if (method, path) not in UNSECURED:
            assert {"ApiKeyAuth": []} in operation["security"], (method, path)
            assert {"BearerAuth": []} in operation["security"], (method, path)


async def test_openapi_secured_operations_without_key_answer_documented_401(
    client: httpx.AsyncClient,
) -> None:
    doc = await _openapi(client)
    secured = [(m, p, op) for m, p, op in _operations(doc) if "security" in op]
    assert len(secured) >= 40
    async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30) as anonymous:
        for method, path, operation in secured:
            response = await anonymous.request(method.upper(), _url(path), json={})
            assert response.status_code == 401, (method, path, response.text)
            assert _matches(doc, operation["responses"]["401"], response.json()), (method, path)


async def test_openapi_secured_operations_take_a_bearer_key(client: httpx.AsyncClient) -> None:
    doc = await _openapi(client)
    bearer = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30) as other:
        for method, path, operation in _operations(doc):
            if "security" not in operation or method != "get" or "/stream" in path:
                continue
            response = await other.get(_url(path), headers=bearer)
            assert response.status_code in (200, 404), (path, response.text)
            if response.status_code == 404:
                assert _matches(doc, operation["responses"]["404"], response.json()), path


async def test_openapi_keyless_operations_answer_documented_errors(
    client: httpx.AsyncClient,
) -> None:
    doc = await _openapi(client)
    async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30) as anonymous:
        for method, path in sorted(UNSECURED - {("get", "/healthz"), ("get", "/readyz")}):
            operation = doc["paths"][path][method]
            response = await anonymous.request(method.upper(), _url(path), json={})
            status = str(response.status_code)
            assert status in ("401", "404"), (method, path, response.text)
            assert _matches(doc, operation["responses"][status], response.json()), (method, path)


async def test_openapi_error_responses_use_each_api_shape_and_no_422(
    client: httpx.AsyncClient,
) -> None:
    doc = await _openapi(client)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, operation in _operations(doc):
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        if path in ("/healthz", "/readyz"):
            continue
        shape = next((s for p, s in SHAPES.items() if path.startswith(p)), "ErrorEnvelope")
        errors = {s: r for s, r in responses.items() if s.startswith("4")}
        assert {"400", "401", "429"} <= errors.keys(), (method, path)
        if method in ("post", "put", "patch"):
            assert "413" in errors or shape == "ShipyardError", (method, path)
        for response in errors.values():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{shape}"}, (method, path)


async def test_openapi_native_error_is_the_envelope(client: httpx.AsyncClient) -> None:
    doc = await _openapi(client)
    envelope = doc["paths"]["/api/v1/runs/{run_id}"]["get"]["responses"]["404"]
    response = await client.get("/api/v1/runs/run_nothing_here")
    assert response.status_code == 404
    assert _matches(doc, envelope, response.json())
    assert not _matches(doc, envelope, {"success": False, "error": {"code": "NOT_FOUND"}})
    assert not _matches(doc, envelope, {"error": "Not Found", "message": "Run not found"})


async def test_openapi_webhook_and_dialect_operations_are_described(
    client: httpx.AsyncClient,
) -> None:
    doc = await _openapi(client)
    dialects = [(m, p, op) for m, p, op in _operations(doc) if p.startswith(DIALECT_PREFIXES)]
    assert len(dialects) >= 19
    for method, path, operation in dialects:
        assert operation.get("summary"), (method, path)
        assert len(operation.get("description", "")) > 40, (method, path)
        # A dialect's own error body is spelled out where a reader of the page looks.
        if path.startswith(tuple(SHAPES)):
            assert "Errors use" in operation["description"], (method, path)
