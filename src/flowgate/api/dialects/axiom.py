"""The Axiom dialect (DESIGN §4): ``POST /api/v3/trigger`` and ``POST /api/v3/run-data``.

Axiom clients send their key and the automation's exact name in the JSON body, and read
``{"status": "error", "message"}`` when something goes wrong. This module maps that request to a
``DialectCall`` (the key masked in the inbox's copy of the body, ``data`` turned into
``input.data`` and ``input.rows``) and the result back into Axiom's answers; every error under
``/api/v3/`` goes through ``_render_error``. Choices the contract leaves open are in
``docs/migrate/axiom.md``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from flowgate import errors, jsonvalue
from flowgate.api.body import parse_json
from flowgate.api.deps import ServicesDep
from flowgate.api.errors import (
    message_with_details,
    rate_limit_headers,
    register_error_shape,
    status_of,
)
from flowgate.api.responses import JSONResponse
from flowgate.api.routes.hooks import arrival_of
from flowgate.service import runs
from flowgate.service.auth import Principal, authenticate
from flowgate.service.core import Services
from flowgate.service.dialects import DialectCall, start_dialect_run
from flowgate.service.ratelimit import Category
from flowgate.service.runs import StartRun
from flowgate.service.webhooks import MASK
from flowgate.store.base import RunRow, RunStatus
from flowgate.types import JSON, JSONObject

router = APIRouter(tags=["axiom"])

PREFIX = "/api/v3/"
TASK_NOT_FOUND = "Task not found, please check the name and try again."
MISSING_NAME = "Missing task name, you must send the name of the task that you wish to trigger."
BAD_DATA = "Data must be sent as an array of arrays."
QUEUED = (
    "Axiom could not start due to a lack of available resources. "
    "The task has been queued and will retry in five minutes."
)
NO_RUNS = "No runs found"
#: Axiom's run-data statuses; every other run status (an ended run that did not complete) is
#: ``Failure``.
_RUN_DATA_STATUS = {
    RunStatus.QUEUED: "Running",
    RunStatus.PENDING: "Running",
    RunStatus.RUNNING: "Running",
    RunStatus.WAITING: "Running",
    RunStatus.COMPLETED: "Success",
}
_REQUEST_SCHEMA: JSONObject = {
    "type": "object",
    "required": ["key", "name"],
    "properties": {
        "key": {"type": "string", "description": "A flowgate API key."},
        "name": {"type": "string", "description": "The workflow's exact name."},
        "data": {"type": "array", "items": {"type": "array"}},
    },
}


def _render_error(exc: errors.FlowgateError, request_id: str) -> Response:
    """Every error under ``/api/v3/`` as ``{"status": "error", "message"}``. Axiom's own
    messages replace flowgate's where the seed names one; 403 is Axiom's quota status."""
    status, message = status_of(exc), exc.message
    if isinstance(exc, errors.Unauthorized):
        message = "Invalid key"
    elif isinstance(exc, errors.QuotaExceeded):
        status, message = 403, "Quota exceeded"
    elif isinstance(exc, errors.ValidationFailed):
        message = message_with_details(exc)
    elif status == 500:
        message = "Internal server error"
    return JSONResponse(
        {"status": "error", "message": message},
        status_code=status,
        headers=rate_limit_headers(exc),
    )


register_error_shape(PREFIX, _render_error)


@router.post(
    "/api/v3/trigger",
    summary="Axiom: start a run of the workflow named `name`",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": _REQUEST_SCHEMA}}}},
)
async def trigger(request: Request, svc: ServicesDep) -> Response:
    raw = await request.body()
    body = await _object(raw)
    principal = await authenticate(svc, _key(body), Category.EXECUTE)
    name = _name(body)
    call = DialectCall(
        source="axiom",
        target=name,
        by_name=True,
        run=StartRun(workflow=name, input=_input(body.get("data"), svc.settings.max_body_bytes)),
        arrival=arrival_of(request, _masked(body, raw)),
    )
    try:
        result = await start_dialect_run(svc, principal, call)
    except errors.NotFound as exc:
        raise errors.NotFound(TASK_NOT_FOUND) from exc
    run = result.started.run
    headers = {"X-Run-Id": run["id"]}
    if run["status"] == RunStatus.QUEUED:
        return JSONResponse(await _queued(svc, run), headers=headers)
    link = f"{svc.settings.base_url}/ui/runs/{run['id']}"
    return JSONResponse({"OPEN LINK IN BROWSER": link}, headers=headers)


@router.post(
    "/api/v3/run-data",
    summary="Axiom: the status and output of the named workflow's most recent run",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": _REQUEST_SCHEMA}}}},
)
async def run_data(request: Request, svc: ServicesDep) -> Response:
    body = await _object(await request.body())
    principal = await authenticate(svc, _key(body), Category.READ)
    run = await _latest(svc, principal, _name(body))
    if run is None:
        raise errors.NotFound(NO_RUNS)
    status = _RUN_DATA_STATUS.get(RunStatus(run["status"]), "Failure")
    return JSONResponse({"status": status, "data": run["output"]}, headers={"X-Run-Id": run["id"]})


async def _latest(svc: Services, principal: Principal, name: str) -> RunRow | None:
    try:
        return await runs.latest_run_of_workflow(svc, principal, name, by_name=True)
    except errors.NotFound as exc:
        raise errors.NotFound(TASK_NOT_FOUND) from exc


async def _queued(svc: Services, run: RunRow) -> JSONObject:
    """Axiom's queued answer, plus why and where the run waits (DESIGN §11)."""
    detail = await runs.describe_run(svc, run)
    return {"status": "queued", "message": QUEUED, "queuedReason": detail.run["queued_reason"]}


async def _object(raw: bytes) -> dict[str, Any]:
    """The body, which the middleware has already checked is strict JSON (empty means ``{}``);
    a long one is parsed off the event loop, as the middleware does."""
    if len(raw) > jsonvalue.OFF_LOOP_BYTES:
        body = await asyncio.to_thread(parse_json, raw)
    else:
        body = parse_json(raw) if raw.strip() else {}
    if not isinstance(body, dict):
        raise errors.InvalidRequest("The request body must be a JSON object")
    return body


def _key(body: dict[str, Any]) -> str | None:
    """A key that is not a string is no key: 401 like a missing one."""
    key = body.get("key")
    return key if isinstance(key, str) else None


def _name(body: dict[str, Any]) -> str:
    """The exact name as sent: never trimmed, case-sensitive (DESIGN §2)."""
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise errors.InvalidRequest(MISSING_NAME)
    return name


def _masked(body: dict[str, Any], raw: bytes) -> bytes:
    """The body as the inbox keeps it: the key replaced by ``***``."""
    if "key" not in body:
        return raw
    return jsonvalue.dumps({**body, "key": MASK})


def _input(data: JSON, limit: int) -> JSONObject:
    """``data`` (absent or ``null``: no input) as ``{"data": <as sent>, "rows": [...]}``.

    ``rows`` key each row's cells by the header row (the first one): a short row misses the
    keys past its end, cells past the header's end are dropped. Raises InvalidRequest when
    ``data`` is not an array of arrays, PayloadTooLarge when the keys it repeats would make the
    input more than ``limit`` bytes larger than ``data`` itself.
    """
    if data is None:
        return {}
    if not isinstance(data, list):
        raise errors.InvalidRequest(BAD_DATA)
    table = [row for row in data if isinstance(row, list)]
    if len(table) != len(data):
        raise errors.InvalidRequest(BAD_DATA)
    if not table:
        return {"data": [], "rows": []}
    header = [_column_name(cell) for cell in table[0]]
    _check_keyed_size(header, table[1:], limit)
    rows: list[JSON] = [_row(header, row) for row in table[1:]]
    return {"data": data, "rows": rows}


def _column_name(cell: JSON) -> str:
    """A header cell as an object key: text as is, anything else as its JSON (``1`` → ``"1"``)."""
    return cell if isinstance(cell, str) else jsonvalue.dumps_str(cell)


def _row(header: list[str], cells: list[JSON]) -> JSONObject:
    """One row keyed by the header; of two columns with the same name the first one wins, as a
    spreadsheet lookup would find it."""
    row: JSONObject = {}
    for name, cell in zip(header, cells, strict=False):
        row.setdefault(name, cell)
    return row


def _check_keyed_size(header: list[str], rows: list[list[JSON]], limit: int) -> None:
    """A long header over many rows would repeat its names into a huge input from a small body
    (DESIGN §7: one request cannot cost many times its size); count before building."""
    cost, prefix = 0, [0]
    for name in header:
        cost += len(name.encode("utf-8", "surrogatepass")) + 4  # quotes, colon, comma
        prefix.append(cost)
    added = sum(prefix[min(len(row), len(header))] for row in rows)
    if added > limit:
        raise errors.PayloadTooLarge(
            f"data is too large once its rows are keyed by the header row: {added} bytes of "
            f"keys, over the limit of {limit}"
        )
