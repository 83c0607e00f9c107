"""Workflows: write (checked, versioned), read, and status changes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from flowgate import errors, ids
from flowgate.service import trigger_types
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.store.base import (
    Duplicate,
    Page,
    RunRow,
    TriggerRow,
    WorkflowRow,
    WorkflowStatus,
    WorkflowVersionRow,
)
from flowgate.types import JSONObject

WORKFLOW_ID = re.compile(r"\Awf_[A-Za-z0-9_-]{1,64}\Z")
_WRITABLE_STATUSES = (WorkflowStatus.DRAFT.value, WorkflowStatus.ACTIVE.value)
_META_KEYS = ("id", "status", "projectId", "version", "createdAt", "updatedAt")


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteWorkflow:
    """A definition as sent (JSON or YAML), with the optional ``id`` and ``status`` beside it."""

    body: JSONObject


def _split(body: JSONObject) -> tuple[JSONObject, str | None, str | None]:
    definition = {k: v for k, v in body.items() if k not in _META_KEYS}
    workflow_id = body.get("id")
    status = body.get("status")
    problems = []
    if workflow_id is not None and (
        not isinstance(workflow_id, str) or not WORKFLOW_ID.match(workflow_id)
    ):
        problems.append({"path": ["id"], "message": "must match ^wf_[A-Za-z0-9_-]{1,64}$"})
    if status is not None and status not in _WRITABLE_STATUSES:
        problems.append({"path": ["status"], "message": "must be draft or active"})
    if problems:
        raise errors.InvalidRequest("Invalid workflow definition", details=problems)
    return definition, workflow_id, status  # type: ignore[return-value]


async def _check(svc: Services, definition: JSONObject) -> None:
    # In a thread: a definition of 100,000 nodes, or an inputSchema's regexes, takes long enough
    # to check that the event loop (and /healthz) would stall on it.
    problems = await asyncio.to_thread(svc.checker.check, definition)
    if problems:
        raise errors.InvalidRequest(
            "Invalid workflow definition",
            details=[{"path": p.path, "message": p.message} for p in problems],
        )


def _document_triggers(
    svc: Services, row: WorkflowRow, previous: list[TriggerRow]
) -> list[TriggerRow]:
    """The rows for the document's ``trigger:`` field. One with the type and name of a previous
    document trigger replaces it under the same id (a webhook keeps its URL and secret).
    Raises InvalidRequest naming every problem."""
    field = row["definition"].get("trigger")
    items = field if isinstance(field, list) else [field] if field else []
    unmatched = list(previous)
    rows, problems = [], []
    for index, item in enumerate(items):
        spec, found = trigger_types.parse_spec(
            item, ["trigger", index] if isinstance(field, list) else ["trigger"]
        )
        problems += found
        if spec is None:
            continue
        same = next(
            (p for p in unmatched if (p["type"], p["name"]) == (spec.type, spec.name)), None
        )
        if same is not None:
            unmatched.remove(same)
        view = trigger_types.build_trigger(
            svc,
            spec,
            project_id=row["project_id"],
            workflow_id=row["id"],
            source="definition",
            now=row["updated_at"],
            previous=same,
        )
        rows.append(view.row)
    if problems:
        raise errors.InvalidRequest(
            "Invalid workflow definition",
            details=[{"path": p.path, "message": p.message} for p in problems],
        )
    return rows


async def create_workflow(svc: Services, principal: Principal, cmd: WriteWorkflow) -> WorkflowRow:
    """Raises InvalidRequest listing every problem, Conflict when the id or name is taken."""
    principal.require("workflows:write")
    definition, workflow_id, status = _split(cmd.body)
    await _check(svc, definition)
    now = svc.clock.now()
    row = WorkflowRow(
        id=workflow_id or ids.new_id("wf"),
        project_id=principal.project_id,
        name=str(definition["name"]),
        status=status or WorkflowStatus.DRAFT.value,
        version=1,
        definition=definition,
        created_at=now,
        updated_at=now,
    )
    triggers = _document_triggers(svc, row, [])
    try:
        await svc.store.insert_workflow(row, triggers=triggers)
        svc.workflow_cache.clear()
        svc.notifier.schedules_changed()  # a schedule trigger may be due sooner than others
    except Duplicate as exc:
        raise errors.Conflict(_taken_message(row)) from exc
    return row


def _taken_message(row: WorkflowRow) -> str:
    return f"A workflow with id {row['id']!r} or name {row['name']!r} already exists"


async def get_workflow(svc: Services, principal: Principal, id_or_name: str) -> WorkflowRow:
    """Raises NotFound ("Workflow not found") for unknown and foreign workflows."""
    row = await find_workflow(svc, principal.project_id, id_or_name)
    if row is None:
        raise errors.NotFound("Workflow not found")
    return row


async def find_workflow(svc: Services, project_id: str, id_or_name: str) -> WorkflowRow | None:
    """By id or exact name, through the per-process cache that writes here clear."""
    key = (project_id, id_or_name)
    row = svc.workflow_cache.get(key)
    if row is None:
        row = await svc.store.get_workflow(project_id, id_or_name)
        if row is not None:
            svc.workflow_cache.put(key, row)
    return row


async def list_workflows(svc: Services, principal: Principal, page: Page) -> list[WorkflowRow]:
    principal.require("workflows:read")
    return await svc.store.list_workflows(principal.project_id, page)


async def read_workflow(svc: Services, principal: Principal, id_or_name: str) -> WorkflowRow:
    principal.require("workflows:read")
    return await get_workflow(svc, principal, id_or_name)


async def update_workflow(
    svc: Services, principal: Principal, id_or_name: str, cmd: WriteWorkflow
) -> WorkflowRow:
    """Replace the definition; a changed definition makes a new version and replaces the
    triggers from the document (those made through the triggers API stay)."""
    principal.require("workflows:write")
    current = await get_workflow(svc, principal, id_or_name)
    definition, _, status = _split(cmd.body)
    await _check(svc, definition)
    changed = definition != current["definition"]
    row = WorkflowRow(
        **{
            **current,
            "name": str(definition["name"]),
            "definition": definition,
            "version": current["version"] + 1 if changed else current["version"],
            "status": status or current["status"],
            "updated_at": svc.clock.now(),
        }
    )
    triggers = None
    if changed:
        stored = await svc.store.list_triggers(row["project_id"], row["id"])
        previous = [t for t in stored if t["source"] == "definition"]
        triggers = _document_triggers(svc, row, previous)
    try:
        await svc.store.update_workflow(row, new_version=changed, triggers=triggers)
    except Duplicate as exc:
        raise errors.Conflict(_taken_message(row)) from exc
    svc.workflow_cache.clear()
    if triggers is not None:
        svc.notifier.schedules_changed()
    return row


async def set_workflow_status(
    svc: Services, principal: Principal, id_or_name: str, status: WorkflowStatus
) -> WorkflowRow:
    """activate / pause / archive. Raises Conflict for pausing a workflow that is not active."""
    principal.require("workflows:write")
    current = await get_workflow(svc, principal, id_or_name)
    if status == WorkflowStatus.PAUSED and current["status"] not in ("active", "paused"):
        raise errors.Conflict(f"Only an active workflow can be paused (it is {current['status']})")
    if current["status"] == status:
        return current
    row = WorkflowRow(**{**current, "status": status.value, "updated_at": svc.clock.now()})
    await svc.store.update_workflow(row, new_version=False)
    svc.workflow_cache.clear()
    return row


async def list_versions(
    svc: Services, principal: Principal, id_or_name: str
) -> list[WorkflowVersionRow]:
    principal.require("workflows:read")
    current = await get_workflow(svc, principal, id_or_name)
    return await svc.store.list_workflow_versions(current["project_id"], current["id"])


async def apply_workflow(
    svc: Services, principal: Principal, body: JSONObject, *, activate: bool = True
) -> WorkflowRow:
    """Create the workflow, or update it if its id (or name) exists; then activate it."""
    key = body.get("id") or body.get("name")
    existing = None
    if isinstance(key, str):
        existing = await find_workflow(svc, principal.project_id, key)
    if existing is None:
        row = await create_workflow(svc, principal, WriteWorkflow(body=body))
    else:
        row = await update_workflow(svc, principal, existing["id"], WriteWorkflow(body=body))
    if activate and row["status"] != WorkflowStatus.ACTIVE:
        row = await set_workflow_status(svc, principal, row["id"], WorkflowStatus.ACTIVE)
    return row


async def latest_runs(
    svc: Services, principal: Principal, workflow_ids: Sequence[str]
) -> dict[str, RunRow]:
    """The newest run of each workflow, by workflow id, in one query (none for a workflow that
    has never run). Raises Forbidden without ``runs:read``."""
    principal.require("runs:read")
    rows = await svc.store.latest_runs(principal.project_id, workflow_ids)
    return {row["workflow_id"]: row for row in rows}
