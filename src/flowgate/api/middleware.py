"""Pure ASGI middleware: request ids, NUL-free URLs, the body limit, strict JSON bodies, the
last-resort 500."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowgate import errors, ids, jsonvalue
from flowgate.api.body import YAML_TYPES, parse_json, parse_yaml
from flowgate.api.errors import error_response_for
from flowgate.engine import metrics
from flowgate.logs import request_id_var

log = logging.getLogger(__name__)
_SANE_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: JSON bodies above this are parsed and checked in a worker thread (a 1 MiB body of 100,000
#: nodes costs tens of ms to walk); smaller ones cost less than the hop to a thread.


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestMiddleware:
    """Gives every response an ``X-Request-Id``; turns stray exceptions into an INTERNAL envelope.

    For JSON endpoints (paths under ``json_prefixes``) it also reads the whole body within
    ``max_body_bytes`` (413 before parsing), parses it strictly as JSON whatever the
    ``Content-Type`` (YAML when the type says so and the path allows it), and hands the app a
    normalized ``application/json`` body; an empty body becomes ``{}``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        json_prefixes: tuple[str, ...] = ("/api/",),
        yaml_prefixes: tuple[str, ...] = ("/api/v1/workflows",),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.json_prefixes = json_prefixes
        self.yaml_prefixes = yaml_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _SANE_REQUEST_ID.match(incoming) else ids.new_id("req")
        )
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = False
        status = 500
        began = time.perf_counter()
        raw_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", raw_id)]
            await send(message)

        try:
            _refuse_nul(scope)
            if scope["method"] in _BODY_METHODS and scope["path"].startswith(self.json_prefixes):
                body = await self._read_json_body(scope, receive)
                scope["headers"] = [
                    (k, v)
                    for k, v in scope["headers"]
                    if k not in (b"content-type", b"content-length")
                ] + [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                receive = _replay(body, receive)
            await self.app(scope, receive, send_with_id)
        except errors.FlowgateError as exc:
            response = error_response_for(scope["path"], exc, request_id)
            await response(scope, receive, send_with_id)
        except Exception:
            log.exception("request.failed", extra={"path": scope["path"]})
            if not started:
                internal = errors.FlowgateError("Internal server error")
                response = error_response_for(scope["path"], internal, request_id)
                await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
            metrics.observe_http(
                scope["method"], _route_template(scope), status, time.perf_counter() - began
            )

    async def _read_json_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise errors.InvalidRequest("Client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        if not raw.strip():
            return b"{}"
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type in YAML_TYPES and scope["path"].startswith(self.yaml_prefixes):
            # ~30 µs per node: a 100,000-node document would hold the event loop for seconds.
            return await asyncio.to_thread(_yaml_as_json, raw)
        if len(raw) > jsonvalue.OFF_LOOP_BYTES:
            await asyncio.to_thread(parse_json, raw)
        else:
            parse_json(raw)
        return raw


def _route_template(scope: Scope) -> str:
    """The matched route's template (``/api/v1/runs/{run_id}``), never the raw path: ids in a
    metric label would make its cardinality unbounded."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else metrics.UNMATCHED_ROUTE


def _yaml_as_json(raw: bytes) -> bytes:
    return jsonvalue.dumps(parse_yaml(raw))


def _refuse_nul(scope: Scope) -> None:
    """A NUL in the path or query, raw or ``%00``, is 400 for every route: PostgreSQL can neither
    store nor compare it, so no id or filter may carry one to the database."""
    raw_path = scope.get("raw_path") or b""
    if "\x00" in scope["path"] or b"\x00" in raw_path or b"%00" in raw_path:
        raise errors.InvalidRequest("The URL path must not contain NUL (%00) characters")
    query = scope.get("query_string") or b""
    if b"\x00" not in query and b"%00" not in query:
        return
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name:
            raise errors.InvalidRequest("Query parameter names must not contain NUL characters")
        if "\x00" in value:
            raise errors.InvalidRequest(
                f"{name} must not contain NUL characters",
                details=[{"path": [name], "message": "must not contain NUL characters"}],
            )


def _too_large(limit: int) -> errors.PayloadTooLarge:
    return errors.PayloadTooLarge(f"Request body is larger than {limit} bytes")


def _replay(body: bytes, original: Receive) -> Receive:
    """Hand the app the body already read, then the client's later messages (disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive
