"""``/hooks/{token}``: native webhooks (DESIGN §4). No API key: the URL's token (and, when the
trigger has one, the signature) is the credential. The service decides; this maps the request
in and the result out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from flowgate import errors
from flowgate.api import views
from flowgate.api.body import parse_json
from flowgate.api.deps import ServicesDep
from flowgate.api.responses import ok
from flowgate.api.routes.runs import wait_seconds
from flowgate.service import runs, uploads
from flowgate.service import webhooks as service
from flowgate.store.base import RunStatus

router = APIRouter(tags=["webhooks"])


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body within ``limit`` bytes (413 otherwise): the JSON middleware reads only
    ``/api/`` bodies, so webhooks bound their own the same way."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"Request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in body_chunks(request):
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"Request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    """The body's chunks; a client gone mid-body is a 400, as in the JSON middleware."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect as exc:
        raise errors.InvalidRequest("Client disconnected") from exc


def arrival_of(request: Request, body: bytes) -> service.Arrival:
    return service.Arrival(
        method=request.method,
        path=request.url.path,
        query_string=request.url.query,
        headers=[
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw
        ],
        body=body,
    )


async def hook(
    token: str,
    request: Request,
    svc: ServicesDep,
    x_api_wait: Annotated[str | None, Header()] = None,
) -> Response:
    wait = wait_seconds(x_api_wait, svc.settings.max_wait_secs)
    content_type = request.headers.get("content-type", "")
    if uploads.is_multipart(content_type):
        # Streamed to disk under its own limits (FLOWGATE_MAX_UPLOAD_BYTES per file).
        result = await service.receive_form(
            svc,
            token,
            arrival_of(request, b""),
            content_type=content_type,
            chunks=body_chunks(request),
            parse_json=parse_json,
        )
    else:
        body = await read_body(request, svc.settings.max_body_bytes)
        arrival = arrival_of(request, body)
        result = await service.receive(svc, token, arrival, parse_json=parse_json)
    run = result.started.run
    headers = {"X-Run-Id": run["id"]}
    if wait > 0:
        detail = await runs.wait_for_run(svc, result.principal, run["id"], wait)
        finished = RunStatus(detail.run["status"]).is_terminal
        return ok(views.run_detail(detail), status_code=200 if finished else 202, headers=headers)
    return ok({"runId": run["id"], "status": run["status"]}, status_code=202, headers=headers)


# One route per method: FastAPI names an operation after the route's first method, so a single
# route with three methods would give /openapi.json three operations with one id.
for _method in ("POST", "PUT", "GET"):
    router.add_api_route(
        "/hooks/{token}",
        hook,
        methods=[_method],
        status_code=202,
        summary="Start a run of the webhook trigger's workflow",
        operation_id=f"webhook_{_method.lower()}",
    )
