"""``http``: an outbound request; its output is ``{status, headers, body}``.

A status outside ``okStatus`` (default 200 to 299) fails the attempt, so ``retry`` applies. The
response body is parsed as JSON when it says so, else kept as text, and capped in size.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urljoin

import httpx
import orjson

from flowgate.engine.netguard import DestinationRefused, check_destination
from flowgate.engine.steps import CheckContext, Problem, StepContext, StepFailure, register_step
from flowgate.types import JSON, JSONObject

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


@register_step("http")
class Http:
    pure: ClassVar[bool] = False
    calls_out: ClassVar[bool] = True

    def check(self, step: JSONObject, ctx: CheckContext) -> list[Problem]:
        return check_request_config(step.get("config"))

    async def execute(self, config: JSON, ctx: StepContext) -> JSON:
        assert isinstance(config, dict)  # noqa: S101 - check() guarantees it
        return await send(config, ctx)


def check_request_config(config: JSON) -> list[Problem]:
    if not isinstance(config, dict) or not isinstance(config.get("url"), str):
        return [Problem(["config", "url"], "http steps need config.url")]
    problems = []
    method = config.get("method", "GET")
    if not isinstance(method, str) or ("{{" not in method and method.upper() not in METHODS):
        problems.append(Problem(["config", "method"], f"must be one of {', '.join(METHODS)}"))
    for key in ("headers", "query"):
        if key in config and not isinstance(config[key], dict | str):
            problems.append(Problem(["config", key], "must be an object"))
    if "json" in config and "body" in config:
        problems.append(Problem(["config"], "give json or body, not both"))
    ok = config.get("okStatus")
    if ok is not None and not (
        isinstance(ok, list) and all(isinstance(c, int) and 100 <= c <= 599 for c in ok)
    ):
        problems.append(Problem(["config", "okStatus"], "must be a list of status codes"))
    return problems


async def send(config: JSONObject, ctx: StepContext) -> JSON:
    """Send the request described by a rendered config, following redirects safely."""
    method = str(config.get("method", "GET")).upper()
    url = str(config["url"])
    request = _build(config, method, url)
    for _ in range(_MAX_REDIRECTS + 1):
        try:
            await check_destination(str(request.url), allow_private=ctx.http.allow_private)
        except DestinationRefused as exc:
            raise StepFailure(str(exc)) from exc
        response = await _send(ctx, request)
        location = response.headers.get("location")
        if response.status_code not in _REDIRECTS or not location:
            return _output(config, response, str(request.url))
        next_method = "GET" if response.status_code == 303 else request.method
        request = _build(config, next_method, urljoin(str(request.url), location), redirect=True)
    raise StepFailure(f"More than {_MAX_REDIRECTS} redirects from {url}")


def _build(config: JSONObject, method: str, url: str, *, redirect: bool = False) -> httpx.Request:
    headers = {str(k): str(v) for k, v in _mapping(config.get("headers")).items()}
    query = {str(k): _query_value(v) for k, v in _mapping(config.get("query")).items()}
    content: bytes | None = None
    if not redirect or method not in ("GET", "HEAD"):
        if "json" in config:
            content = orjson.dumps(config["json"])
            headers.setdefault("content-type", "application/json")
        elif "body" in config:
            body = config["body"]
            content = body.encode() if isinstance(body, str) else orjson.dumps(body)
    try:
        return httpx.Request(method, url, headers=headers, params=query or None, content=content)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise StepFailure(f"Invalid request: {exc}") from exc


def _mapping(value: JSON) -> JSONObject:
    return value if isinstance(value, dict) else {}


def _query_value(value: JSON) -> str | list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return "" if value is None else str(value)


async def _send(ctx: StepContext, request: httpx.Request) -> httpx.Response:
    limit = ctx.http.max_response_bytes
    try:
        response = await ctx.http.client.send(request, stream=True)
        try:
            chunks, size = [], 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > limit:
                    raise StepFailure(f"Response from {request.url} is larger than {limit} bytes")
                chunks.append(chunk)
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        raise StepFailure(f"{type(exc).__name__} calling {request.url}: {exc}") from exc
    return httpx.Response(response.status_code, headers=response.headers, content=b"".join(chunks))


def _output(config: JSONObject, response: httpx.Response, url: str) -> JSON:
    output: JSONObject = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": _body(response),
    }
    ok = config.get("okStatus")
    allowed = ok if isinstance(ok, list) else range(200, 300)
    if response.status_code not in allowed:
        raise StepFailure(f"HTTP {response.status_code} from {url}")
    return output


def _body(response: httpx.Response) -> JSON:
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return orjson.loads(response.content)  # type: ignore[no-any-return]
        except orjson.JSONDecodeError:
            pass
    return response.content.decode(response.encoding or "utf-8", errors="replace")
