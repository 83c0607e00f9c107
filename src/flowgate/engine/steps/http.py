"""``http``: an outbound request; its output is ``{status, headers, body}``.

A status outside ``okStatus`` (default 200 to 299) fails the attempt, so ``retry`` applies; the
failed attempt keeps the status, headers and first 4 KB of the body as its output. The
response body is parsed as JSON when it says so, else kept as text, and capped in size.
:func:`send` is also the one path by which actions (``http.request``, Slack, Stripe) call out:
it adds ``Idempotency-Key``, keeps connection credentials to their origin and across redirects
(:mod:`flowgate.engine.outbound`), and bounds the whole exchange in time and size. Where it may
connect is decided by the client's transport (:mod:`flowgate.engine.netguard`).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import httpx
import orjson

from flowgate.engine.netguard import DestinationRefused, check_url
from flowgate.engine.outbound import (
    Credentials,
    LeavesOrigin,
    check_origin,
    follow,
    redirect_target,
    with_idempotency_key,
)
from flowgate.engine.steps import CheckContext, Problem, StepContext, StepFailure, register_step
from flowgate.types import JSON, JSONObject

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_MAX_REDIRECTS = 5
#: ``okStatus`` for callers that judge the status themselves (actions).
ANY_STATUS: list[JSON] = list(range(100, 600))
#: How much of a refused response's body a failed attempt keeps (``failed_response``).
FAILED_BODY_BYTES = 4096
_FAILED_BODY_DEPTH = 64


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


async def send(
    config: JSONObject, ctx: StepContext, *, credentials: Credentials | None = None
) -> JSONObject:
    """Send the request a rendered config describes and return ``{status, headers, body}``.

    The one outbound path of steps and actions: ``credentials`` (a connection's headers and the
    origin they belong to) are added and kept to that origin, ``Idempotency-Key`` is added,
    redirects are followed by the rules of :mod:`flowgate.engine.outbound`, the body is read
    under ``max_response_bytes`` and the whole exchange, redirects included, under
    ``timeout_secs``. Raises StepFailure, also for a status outside ``okStatus``.
    """
    method = str(config.get("method", "GET")).upper()
    request = _build(config, method, str(config["url"]), ctx, credentials)
    shown = credentials.label if credentials and credentials.label else None
    try:
        check_url(str(request.url))
        check_origin(request, credentials)
    except (DestinationRefused, LeavesOrigin) as exc:
        raise StepFailure(str(exc)) from exc
    limit = ctx.http.timeout_secs
    bound = asyncio.timeout(limit)
    try:
        async with bound:
            response = await _follow(ctx, request, credentials, shown)
    except TimeoutError as exc:
        if not bound.expired():
            raise
        where = shown or str(request.url)
        raise StepFailure(f"No complete response from {where} within {limit:g} s") from exc
    return _output(config, response, shown or str(response.request.url))


async def _follow(
    ctx: StepContext, request: httpx.Request, credentials: Credentials | None, shown: str | None
) -> httpx.Response:
    connection_headers = {k.lower() for k in credentials.headers} if credentials else set()
    first = shown or str(request.url)
    for _ in range(_MAX_REDIRECTS + 1):
        try:
            check_url(str(request.url))
        except DestinationRefused as exc:
            raise StepFailure(str(exc)) from exc
        response = await _send(ctx, request, shown or str(request.url))
        try:
            target = redirect_target(response)
        except httpx.InvalidURL as exc:
            raise StepFailure(f"Invalid redirect from {shown or request.url}: {exc}") from exc
        if target is None:
            return response
        request = follow(
            request, response.status_code, target, connection_headers=connection_headers
        )
    raise StepFailure(f"More than {_MAX_REDIRECTS} redirects from {first}")


def _build(
    config: JSONObject,
    method: str,
    url: str,
    ctx: StepContext,
    credentials: Credentials | None,
) -> httpx.Request:
    headers = {str(k): str(v) for k, v in _mapping(config.get("headers")).items()}
    if credentials is not None:  # the connection's headers win over the step's, in any case
        secret = {name.lower() for name in credentials.headers}
        headers = {k: v for k, v in headers.items() if k.lower() not in secret}
        headers |= credentials.headers
    headers = with_idempotency_key(headers, ctx.idempotency_key)
    query = {str(k): _query_value(v) for k, v in _mapping(config.get("query")).items()}
    content: bytes | None = None
    if "json" in config:
        content = orjson.dumps(config["json"])
        if not any(name.lower() == "content-type" for name in headers):
            headers["content-type"] = "application/json"
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


async def _send(ctx: StepContext, request: httpx.Request, shown: str) -> httpx.Response:
    """One request, its body read whole but never more than ``max_response_bytes`` once
    decoded (so a compressed body cannot expand past the cap either)."""
    limit = ctx.http.max_response_bytes
    try:
        response = await ctx.http.client.send(request, stream=True)
        try:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise StepFailure(f"Response from {shown} is larger than {limit} bytes")
                chunks.append(chunk)
        finally:
            await response.aclose()
    except DestinationRefused as exc:
        raise StepFailure(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise StepFailure(f"{type(exc).__name__} calling {shown}: {exc}") from exc
    # The body is decoded already: its content-encoding no longer applies.
    headers = [(k, v) for k, v in response.headers.multi_items() if k != "content-encoding"]
    return httpx.Response(
        response.status_code, headers=headers, content=b"".join(chunks), request=request
    )


def _output(config: JSONObject, response: httpx.Response, url: str) -> JSONObject:
    output: JSONObject = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": _body(response),
    }
    ok = config.get("okStatus")
    allowed = ok if isinstance(ok, list) else range(200, 300)
    if response.status_code not in allowed:
        raise StepFailure(
            f"HTTP {response.status_code} from {url}", output=failed_response(response)
        )
    return output


def failed_response(response: httpx.Response) -> JSONObject:
    """What a failed attempt keeps of a response whose status was refused, so that a user sees
    why the call failed: ``{status, headers, body}`` with at most the first
    :data:`FAILED_BODY_BYTES` of the body (JSON parsed when it is whole and shallow, else text,
    cut ones ending ``… (N bytes)``). No U+0000: PostgreSQL cannot store it in JSON."""
    content = response.content
    body: JSON
    if len(content) <= FAILED_BODY_BYTES and _shallow(content):
        body = _body(response)
    else:
        text = content[:FAILED_BODY_BYTES].decode(response.encoding or "utf-8", errors="replace")
        body = f"{text}… ({len(content):,} bytes)"
    return {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": _without_nul(body),
    }


def _shallow(content: bytes) -> bool:
    """At most 64 levels of nesting, judged by an upper bound: one ``[`` or ``{`` per level."""
    return content.count(b"[") + content.count(b"{") <= _FAILED_BODY_DEPTH


def _without_nul(value: JSON) -> JSON:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {k.replace("\x00", "\ufffd"): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _body(response: httpx.Response) -> JSON:
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return orjson.loads(response.content)  # type: ignore[no-any-return]
        except orjson.JSONDecodeError:
            pass
    return response.content.decode(response.encoding or "utf-8", errors="replace")
