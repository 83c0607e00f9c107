"""Starting runs (``POST /api/v1/workflows/{id}/run``) and ``/api/v1/runs``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Query
from pydantic import ValidationError
from starlette.responses import Response

from flowgate import errors
from flowgate.api import views
from flowgate.api.deps import ExecutingPrincipalDep, PrincipalDep, ServicesDep
from flowgate.api.errors import error_body
from flowgate.api.models import BatchRequest, BulkRunsRequest, RunRequest
from flowgate.api.responses import ok, page
from flowgate.service import runs as service
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.service.ratelimit import Category
from flowgate.store.base import Page, RunFilter, RunStatus
from flowgate.types import JSON

router = APIRouter(tags=["runs"])
_TRUE, _FALSE = ("true", "1"), ("false", "0", "")


def wait_seconds(header: str | None, max_wait: float) -> float:
    """``x-api-wait``: true/1 → the maximum, a number → that many seconds (capped), false/0 → 0."""
    if header is None:
        return 0.0
    value = header.strip().lower()
    if value in _TRUE:
        return max_wait
    if value in _FALSE:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise errors.InvalidRequest(
            "x-api-wait must be true, false, or a number of seconds",
            details=[{"path": ["x-api-wait"], "message": f"invalid value {header!r}"}],
        )
    return min(seconds, max_wait)


@router.post("/api/v1/workflows/{workflow_id}/run", status_code=201, summary="Start a run")
async def start_run(
    workflow_id: str,
    svc: ServicesDep,
    who: ExecutingPrincipalDep,
    body: Annotated[RunRequest, Body()],
    x_api_wait: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=500)] = None,
    # Which client started the run: the SDK sends ``cli`` from the CLI. Only the sources an
    # API caller may claim are accepted; any other value is a 400 rather than silently ``api``,
    # so a client that sends a typo learns of it (``webhook``, ``schedule``… are the server's).
    x_flowgate_source: Annotated[Literal["api", "cli"] | None, Header()] = None,
) -> Response:
    wait = wait_seconds(x_api_wait, svc.settings.max_wait_secs)
    _refuse_unknown_fields(body)
    cmd = service.StartRun(
        workflow=workflow_id,
        input=body.input,
        env=body.env,
        connection_id=body.connection_id,
        idempotency_key=body.idempotency_key or idempotency_key or None,
        priority=body.priority,
        source=x_flowgate_source or "api",
    )
    if wait > 0:
        started, detail = await service.start_run_and_wait(svc, who, cmd, wait)
        finished = RunStatus(detail.run["status"]).is_terminal
        headers = _run_headers(started)
        return ok(views.run_detail(detail), status_code=200 if finished else 202, headers=headers)
    started = await service.start_run(svc, who, cmd)
    [run] = await service.explain_queued(svc, [started.run])
    headers = _run_headers(started)
    return ok(views.started_run(run), status_code=200 if started.replayed else 201, headers=headers)


@router.post("/api/v1/workflows/{workflow_id}/run/batch", summary="Start up to 1,000 runs")
async def start_batch(
    workflow_id: str,
    svc: ServicesDep,
    who: ExecutingPrincipalDep,
    body: Annotated[BatchRequest, Body()],
) -> Response:
    """One result per item, in order; one bad item does not sink the others."""
    commands: list[service.StartRun | errors.FlowgateError] = []
    for index, item in enumerate(body.runs):
        try:
            if index > 0:
                await svc.rate_limiter.acquire(
                    who.key_id, Category.EXECUTE, who.rate_limit_per_minute
                )
            commands.append(_batch_command(workflow_id, item))
        except errors.FlowgateError as exc:
            commands.append(exc)
    valid = [c for c in commands if isinstance(c, service.StartRun)]
    started = iter(await service.start_runs(svc, who, workflow_id, valid))
    results = [c if isinstance(c, errors.FlowgateError) else next(started) for c in commands]
    return ok([_batch_item(result) for result in results])


def _batch_command(workflow_id: str, item: dict[str, object]) -> service.StartRun:
    try:
        request = RunRequest.model_validate(item)
    except ValidationError as exc:
        details = [{"path": list(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise errors.InvalidRequest("Invalid run request", details=details) from exc
    _refuse_unknown_fields(request)
    return service.StartRun(
        workflow=workflow_id,
        input=request.input,
        env=request.env,
        connection_id=request.connection_id,
        idempotency_key=request.idempotency_key,
        priority=request.priority,
        source="batch",
    )


_RUN_FIELDS = "input, env, connectionId, idempotencyKey, priority"


def _refuse_unknown_fields(request: RunRequest) -> None:
    """A field a run request does not have is a 400 that says where things go: most often the
    input was sent bare (``{"customerId": "c1"}``) and would otherwise run with ``{}``."""
    unknown = list(request.model_extra or {})
    if not unknown:
        return
    names = ", ".join(f'"{name}"' for name in unknown[:5]) + (", …" if len(unknown) > 5 else "")
    plural = "s" if len(unknown) > 1 else ""
    if "input" in request.model_fields_set:
        hint = f"a run request takes only {_RUN_FIELDS}"
    else:
        hint = 'the run\'s input goes in {"input": {...}}'
    raise errors.InvalidRequest(
        f"Unknown field{plural} {names}: {hint}",
        details=[{"path": [name], "message": "unknown field"} for name in unknown[:20]],
    )


def _batch_item(result: service.StartResult) -> JSON:
    if isinstance(result, errors.FlowgateError):
        return error_body(result.code, result.message, result.details)  # type: ignore[return-value]
    return {"success": True, "data": views.started_run(result.run)}


@router.get("/api/v1/runs/{run_id}", summary="A run with its steps")
async def get_run(
    run_id: str,
    svc: ServicesDep,
    who: PrincipalDep,
    wait_secs: Annotated[float | None, Query(alias="waitSecs", ge=0)] = None,
) -> Response:
    if wait_secs:
        detail = await service.wait_for_run(
            svc, who, run_id, min(wait_secs, svc.settings.max_wait_secs)
        )
    else:
        detail = await service.get_run(svc, who, run_id)
    return ok(views.run_detail(detail))


@router.get("/api/v1/runs", summary="List runs, newest first")
async def list_runs(
    svc: ServicesDep,
    who: PrincipalDep,
    workflow_id: Annotated[str | None, Query(alias="workflowId")] = None,
    status: Annotated[list[str] | None, Query()] = None,
    source: str | None = None,
    created_after: Annotated[datetime | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[datetime | None, Query(alias="createdBefore")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Response:
    statuses = service.parse_statuses(status or [])
    for name, value in (("createdAfter", created_after), ("createdBefore", created_before)):
        if value is not None and value.tzinfo is None:
            raise errors.InvalidRequest(f"{name} needs a time zone (e.g. a trailing Z)")
    where = RunFilter(
        workflow_id=await _workflow_filter(svc, who, workflow_id),
        statuses=statuses,
        source=source,
        created_after=created_after,
        created_before=created_before,
    )
    rows = await service.list_runs(
        svc, who, where, Page(limit=limit + 1, after=views.decode_cursor(cursor))
    )
    shown = await service.explain_queued(svc, rows[:limit]) + rows[limit:]
    items, has_more, next_cursor = views.paged([views.run_summary(r) for r in shown], rows, limit)
    return page(items, has_more=has_more, next_cursor=next_cursor)


@router.post("/api/v1/runs/cancel", summary="Cancel every unfinished run matching the filters")
async def cancel_matching(
    body: Annotated[BulkRunsRequest, Body()], svc: ServicesDep, who: PrincipalDep
) -> Response:
    result = await service.cancel_runs(
        svc, who, await _bulk_filter(svc, who, body), dry_run=body.dry_run
    )
    return ok(
        {"matched": result.matched, "canceled": len(result.run_ids), "runIds": result.run_ids,
         "dryRun": result.dry_run}
    )  # fmt: skip


@router.post("/api/v1/runs/replay", summary="Replay every run matching the filters")
async def replay_matching(
    body: Annotated[BulkRunsRequest, Body()], svc: ServicesDep, who: PrincipalDep
) -> Response:
    result = await service.replay_runs(
        svc, who, await _bulk_filter(svc, who, body), dry_run=body.dry_run
    )
    return ok(
        {"matched": result.matched, "replayed": len(result.run_ids), "runIds": result.run_ids,
         "dryRun": result.dry_run}
    )  # fmt: skip


async def _bulk_filter(svc: Services, who: Principal, body: BulkRunsRequest) -> RunFilter:
    raw = [body.status] if isinstance(body.status, str) else body.status
    return RunFilter(
        workflow_id=await _workflow_filter(svc, who, body.workflow_id),
        statuses=service.parse_statuses(raw or []),
        source=body.source,
        created_after=body.created_after,
        created_before=body.created_before,
    )


async def _workflow_filter(svc: Services, who: Principal, workflow_id: str | None) -> str | None:
    """A workflow id or exact name; unknown ones filter to nothing rather than to everything."""
    if workflow_id is None:
        return None
    found = await svc.store.get_workflow(who.project_id, workflow_id)
    return found["id"] if found else workflow_id


@router.post("/api/v1/runs/{run_id}/replay", status_code=201, summary="Run again, same input")
async def replay_run(run_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    started = await service.replay_run(svc, who, run_id)
    [run] = await service.explain_queued(svc, [started.run])
    return ok(views.started_run(run), status_code=201, headers=_run_headers(started))


@router.post("/api/v1/runs/{run_id}/rerun", status_code=201, summary="Rerun from the failed step")
async def rerun_run(run_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    started = await service.rerun_run(svc, who, run_id)
    [run] = await service.explain_queued(svc, [started.run])
    return ok(views.started_run(run), status_code=201, headers=_run_headers(started))


def _run_headers(started: service.StartedRun) -> dict[str, str]:
    run_id = started.run["id"]
    headers = {"X-Run-Id": run_id, "Location": f"/api/v1/runs/{run_id}"}
    if started.replayed:
        headers["Idempotent-Replayed"] = "true"
    return headers


@router.post("/api/v1/runs/{run_id}/cancel", summary="Cancel a run that has not ended")
async def cancel_run(run_id: str, svc: ServicesDep, who: PrincipalDep) -> Response:
    run = await service.cancel_run(svc, who, run_id)
    return ok(views.run_summary(run))
