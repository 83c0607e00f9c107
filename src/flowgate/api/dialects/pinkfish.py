"""The Pinkfish dialect (DESIGN §4): a Pinkfish client moves by changing its base URL and key.

``POST|GET /ext/triggers/{triggerId}`` takes the key in ``X-API-KEY``;
``/ext/webhook/{apiKey}/triggers/{triggerId}`` in the path (shown as ``***`` in the inbox).
``triggerId`` is a ``trg_`` trigger id or a workflow id. JSON, form-encoded and multipart bodies
and query parameters become the run's input (body keys win). Without ``x-api-wait`` the answer
is 200 ``null`` with the run id in headers; with it, the run as Pinkfish reports it, or
Pinkfish's timeout body. Every answer, errors included, carries the CORS headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import Response

from flowgate import errors, jsonvalue
from flowgate.api.body import parse_json
from flowgate.api.deps import ServicesDep, api_key_of
from flowgate.api.errors import (
    message_with_details,
    rate_limit_headers,
    register_error_shape,
    status_of,
)
from flowgate.api.responses import JSONResponse
from flowgate.api.routes.hooks import arrival_of, body_chunks, read_body
from flowgate.api.routes.runs import wait_seconds
from flowgate.engine.notifier import RunWatch
from flowgate.service import runs, uploads
from flowgate.service.auth import Principal, authenticate
from flowgate.service.core import Services
from flowgate.service.dialects import DialectCall, DialectStarted, start_dialect_run
from flowgate.service.ratelimit import Category
from flowgate.service.runs import RunDetail, StartRun, StepView
from flowgate.service.webhooks import MASK
from flowgate.store.base import FileRow, RunStatus, StepStatus
from flowgate.types import JSON, JSONObject

router = APIRouter(tags=["pinkfish"])

SOURCE: Final = "pinkfish"
#: The seed's response headers, plus what a browser must be allowed to send (the key, the wait)
#: and to read (the run id).
CORS_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": (
        "Content-Type, Authorization, X-API-KEY, x-api-wait, Idempotency-Key"
    ),
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Expose-Headers": "X-Pf-Run-Id, X-Run-Id, X-Pf-Automation-Id, X-Request-Id",
}
#: The text is Pinkfish's, whatever ``FLOWGATE_PINKFISH_WAIT_SECS`` says: clients match on it.
TIMEOUT_BODY: Final = {
    "status": "timeout",
    "message": "Automation execution exceeded 60 second timeout. "
    "Use runId to check results in Run Monitor.",
}
_REASONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
}
_JSON_TYPES: Final = ("application/json", "text/json")
_FORM_TYPE: Final = "application/x-www-form-urlencoded"
_MS: Final = timedelta(milliseconds=1)
#: As on ``/run`` (``api/models.py``) and the store's column.
_MAX_IDEMPOTENCY_KEY: Final = 500
_FAILED_STEPS: Final = frozenset({StepStatus.FAILED, StepStatus.TIMED_OUT, StepStatus.CANCELED})


def render_error(exc: errors.FlowgateError, request_id: str) -> Response:
    """``{"error": <reason phrase>, "message"}``, CORS headers on it as on every answer."""
    status = status_of(exc)
    return JSONResponse(
        {"error": _REASONS.get(status, "Internal Server Error"), "message": _message(exc)},
        status_code=status,
        headers={**CORS_HEADERS, **rate_limit_headers(exc)},
    )


def _message(exc: errors.FlowgateError) -> str:
    """Pinkfish's body has no ``details``: a validation failure names each problem in it."""
    return message_with_details(exc) if isinstance(exc, errors.ValidationFailed) else exc.message


register_error_shape("/ext/", render_error)


async def trigger(trigger_id: str, request: Request, svc: ServicesDep) -> Response:
    """The API trigger endpoint: the key in ``X-API-KEY`` (or ``Authorization: Bearer``)."""
    principal = await authenticate(svc, api_key_of(request), Category.EXECUTE)
    return await _call(svc, principal, request, trigger_id, path=request.url.path)


async def webhook(api_key: str, trigger_id: str, request: Request, svc: ServicesDep) -> Response:
    """The webhook URL, for senders that cannot set headers: the key is in the path."""
    principal = await authenticate(svc, api_key, Category.EXECUTE)
    path = f"/ext/webhook/{MASK}/triggers/{trigger_id}"
    return await _call(svc, principal, request, trigger_id, path=path)


async def preflight() -> Response:
    return Response(status_code=204, headers=CORS_HEADERS)


async def _call(
    svc: Services, principal: Principal, request: Request, target: str, *, path: str
) -> Response:
    wait = wait_seconds(request.headers.get("x-api-wait"), svc.settings.pinkfish_wait_secs)
    if wait > 0:
        # Checked before the run starts: a refusal after it would hide a run that exists.
        principal.require("runs:read")
    query = _pairs(request.url.query, "query parameters")
    raw, body, files = await _read(svc, principal, request, target)
    with runs.watch_new_run(svc) as watch:
        call = DialectCall(
            source=SOURCE,
            target=target,
            by_trigger=target.startswith("trg_"),
            run=StartRun(
                workflow=target,
                input={**query, **body},
                idempotency_key=_idempotency_key(request),
                run_id=watch.run_id,
            ),
            arrival=dataclasses.replace(arrival_of(request, raw), path=path),
        )
        try:
            result = await start_dialect_run(svc, principal, call)
        except errors.FlowgateError:
            # A refused call keeps no files: nobody could be handed their URLs.
            await uploads.delete_stored(svc, files)
            raise
        return await _answer(svc, principal, result, wait, watch)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key") or None
    if key is not None and len(key) > _MAX_IDEMPOTENCY_KEY:
        raise errors.InvalidRequest(
            f"Idempotency-Key must be at most {_MAX_IDEMPOTENCY_KEY} characters"
        )
    return key


async def _answer(
    svc: Services, principal: Principal, result: DialectStarted, wait: float, watch: RunWatch
) -> Response:
    run = result.started.run
    headers = {
        **CORS_HEADERS,
        "X-Pf-Run-Id": run["id"],
        "X-Run-Id": run["id"],
        "X-Pf-Automation-Id": run["workflow_id"],
    }
    if result.started.replayed:
        headers["Idempotent-Replayed"] = "true"
    if wait <= 0:
        return Response(b"null", media_type="application/json", headers=headers)
    detail = await runs.wait_for_started_run(svc, principal, watch, result.started, wait)
    if not RunStatus(detail.run["status"]).is_terminal:
        return JSONResponse(TIMEOUT_BODY, headers=headers)
    body = sync_body(
        detail,
        automation_name=result.workflow["name"],
        trigger_id=result.trigger_id or result.workflow["id"],
        started_by=principal.key_id,
    )
    return JSONResponse(body, headers=headers)


async def _read(
    svc: Services, principal: Principal, request: Request, target: str
) -> tuple[bytes, JSONObject, list[FileRow]]:
    """The body as the inbox keeps it, as the input sees it, and the files it stored."""
    content_type = request.headers.get("content-type", "")
    if uploads.is_multipart(content_type):
        form = await uploads.read_form(
            svc,
            project_id=principal.project_id,
            # The column is 80 wide: every id fits, only a long workflow name is cut (the
            # owner is a record of who received the file, never looked up).
            owner_id=target[:80],
            content_type=content_type,
            chunks=body_chunks(request),
        )
        return jsonvalue.dumps(form.body), form.body, form.files
    raw = await read_body(request, svc.settings.max_body_bytes)
    return raw, await _body_input(raw, content_type), []


async def _body_input(raw: bytes, content_type: str) -> JSONObject:
    """JSON (an object, or ``null``) or a form; an untyped body is read as JSON, and a
    form-typed one that is a JSON object too (curl's ``--data`` sends the form type)."""
    if not raw.strip():
        return {}
    kind = content_type.split(";")[0].strip().lower()
    if kind in _JSON_TYPES or kind.endswith("+json"):
        return _object(await _parse(raw))
    if kind == _FORM_TYPE:
        if raw.lstrip().startswith(b"{"):
            try:
                return _object(await _parse(raw))
            except errors.InvalidRequest:
                pass
        return _pairs(_text(raw), "form fields")
    try:
        return _object(await _parse(raw))
    except errors.InvalidRequest as exc:
        raise errors.UnsupportedMediaType(
            "Send JSON, a form (application/x-www-form-urlencoded) or multipart/form-data"
        ) from exc


async def _parse(raw: bytes) -> JSON:
    if len(raw) > jsonvalue.OFF_LOOP_BYTES:
        return await asyncio.to_thread(parse_json, raw)
    return parse_json(raw)


def _object(value: JSON) -> JSONObject:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.InvalidRequest("The JSON body must be an object")
    return value


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise errors.InvalidRequest("The form body is not UTF-8 text") from exc


def _pairs(text: str, what: str) -> JSONObject:
    """Form or query pairs; repeated names become lists. NUL cannot be stored (PostgreSQL)."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=uploads.MAX_FIELDS)
    except ValueError as exc:
        raise errors.InvalidRequest(f"At most {uploads.MAX_FIELDS} {what} are accepted") from exc
    if any("\x00" in name or "\x00" in value for name, value in pairs):
        raise errors.InvalidRequest(f"The {what} must not contain NUL characters")
    return uploads.grouped([(name, value) for name, value in pairs])


def sync_body(
    detail: RunDetail, *, automation_name: str, trigger_id: str, started_by: str
) -> JSONObject:
    """A finished run as Pinkfish's synchronous answer reports it. Steps are numbered from 1;
    a step's version is its workflow's (flowgate versions workflows, not steps)."""
    run = detail.run
    version = run["workflow_version"]
    started = run["started_at"] or run["created_at"]
    return {
        "automationId": run["workflow_id"],
        "automationVersion": version,
        "automationName": automation_name,
        "id": run["id"],
        "type": "TRIGGER",
        "status": "completed" if run["status"] == RunStatus.COMPLETED else "failed",
        "stepMap": {str(index): version for index in range(1, len(detail.steps) + 1)},
        "inputs": run["input"],
        "triggerId": trigger_id,
        "results": [
            _result(index, step, version)
            for index, step in enumerate(detail.steps, start=1)
            if step.row is not None
        ],
        "selectedResult": run["output"],
        "started": started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "startedBy": started_by,
    }


def _result(index: int, step: StepView, version: int) -> JSONObject:
    row = step.row
    assert row is not None  # noqa: S101 - only steps that ran are reported
    failed = row["status"] in _FAILED_STEPS
    value = row["error"] if failed else row["output"]
    return {
        "stepIndex": index,
        "stepVersion": version,
        "result": {
            "stepIndex": index,
            "resultType": "plaintext" if isinstance(value, str) else "json",
            "result": value,
        },
        "exitCode": 1 if failed else 0,
        "duration": _millis(row["started_at"], row["completed_at"]),
    }


def _millis(start: datetime | None, end: datetime | None) -> int:
    return 0 if start is None or end is None else (end - start) // _MS


# One route per method: FastAPI names an operation after its route's first method.
for _method in ("POST", "GET"):
    router.add_api_route(
        "/ext/triggers/{trigger_id}",
        trigger,
        methods=[_method],
        summary="Start a run (Pinkfish API trigger, key in X-API-KEY)",
        operation_id=f"pinkfish_trigger_{_method.lower()}",
    )
    router.add_api_route(
        "/ext/webhook/{api_key}/triggers/{trigger_id}",
        webhook,
        methods=[_method],
        summary="Start a run (Pinkfish webhook URL, key in the path)",
        operation_id=f"pinkfish_webhook_{_method.lower()}",
    )
for _path, _name in (
    ("/ext/triggers/{trigger_id}", "trigger"),
    ("/ext/webhook/{api_key}/triggers/{trigger_id}", "webhook"),
):
    router.add_api_route(
        _path,
        preflight,
        methods=["OPTIONS"],
        status_code=204,
        summary="CORS preflight",
        operation_id=f"pinkfish_{_name}_options",
        include_in_schema=False,
    )
