"""The runs list (``/ui/runs``) and a run's page (``/ui/runs/{runId}``, the link Axiom's answer
carries), with cancel."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from flowgate import errors
from flowgate.api import views
from flowgate.service import runs as run_service
from flowgate.statuses import RunStatus
from flowgate.store.base import Page, RunFilter
from flowgate.ui.pages import (
    PAGE_SIZE,
    FormField,
    Viewer,
    current_viewer,
    form_viewer,
    ms,
    parse_statuses,
    pretty,
    render,
    router,
    run_row,
    svc_of,
    to_login,
)


@router.get("/runs")
async def runs_page(request: Request) -> Response:
    viewer = await current_viewer(request)
    if viewer is None:
        return to_login(request)
    svc = svc_of(request)
    query = request.query_params
    workflow_id = (query.get("workflowId") or "").strip() or None
    source = (query.get("source") or "").strip() or None
    statuses = parse_statuses(query.getlist("status"))
    cursor = query.get("cursor") or None
    if workflow_id is not None:
        found = await svc.store.get_workflow(viewer.principal.project_id, workflow_id)
        workflow_id = found["id"] if found else workflow_id
    where = RunFilter(workflow_id=workflow_id, statuses=statuses, source=source)
    rows = await run_service.list_runs(
        svc,
        viewer.principal,
        where,
        Page(limit=PAGE_SIZE + 1, after=views.decode_cursor(cursor)),
    )
    shown = rows[:PAGE_SIZE]
    next_cursor = None
    if len(rows) > PAGE_SIZE:
        next_cursor = views.encode_cursor(shown[-1]["created_at"], shown[-1]["id"])
    filters = {
        "workflowId": query.get("workflowId") or "",
        "status": statuses,
        "source": query.get("source") or "",
    }
    next_url = None
    if next_cursor is not None:
        params = [(k, v) for k, v in (("workflowId", filters["workflowId"]),
                                      ("source", filters["source"])) if v]  # fmt: skip
        params += [("status", s) for s in statuses] + [("cursor", next_cursor)]
        next_url = "/ui/runs?" + urlencode(params)
    title = "Runs"
    if statuses:
        title += " · " + ", ".join(statuses)
    if filters["workflowId"]:
        title += f" · {filters['workflowId']}"
    return render(
        "runs.html",
        title=title,
        viewer=viewer,
        runs=[run_row(run) for run in shown],
        filters=filters,
        all_statuses=[s.value for s in RunStatus],
        next_url=next_url,
        first_url="/ui/runs" if cursor else None,
    )


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str) -> Response:
    viewer = await current_viewer(request)
    if viewer is None:
        return to_login(request)
    detail = await run_service.get_run(svc_of(request), viewer.principal, run_id)
    return _run_response(viewer, detail, notice=None)


@router.post("/runs/{run_id}/cancel")
async def cancel(request: Request, run_id: str, csrf: FormField = None) -> Response:
    found = await form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    svc = svc_of(request)
    try:
        await run_service.cancel_run(svc, found.principal, run_id)
    except errors.Conflict as exc:
        detail = await run_service.get_run(svc, found.principal, run_id)
        return _run_response(found, detail, notice=exc.message, status_code=409)
    return RedirectResponse(f"/ui/runs/{quote(run_id, safe='')}", status_code=303)


# --- view helpers ---


def _run_response(
    viewer: Viewer, detail: run_service.RunDetail, *, notice: str | None, status_code: int = 200
) -> Response:
    run = detail.run
    wire = views.run_detail(detail)
    steps = wire["steps"] if isinstance(wire["steps"], list) else []
    return render(
        "run.html",
        status_code=status_code,
        title=f"Run {run['id']}",
        viewer=viewer,
        run=run_row(run),
        ended=RunStatus(run["status"]).is_terminal,
        input=pretty(run["input"]),
        env=pretty(wire["env"]),
        output=None if run["output"] is None else pretty(run["output"]),
        error=None if run["error"] is None else pretty(run["error"]),
        queued_reason=None if run["queued_reason"] is None else pretty(run["queued_reason"]),
        steps=[
            {
                **step,
                "duration": ms(step["durationMs"]),
                "errorText": None if step["error"] is None else pretty(step["error"]),
            }
            for step in steps
            if isinstance(step, dict)
        ],
        notice=notice,
    )
