"""Triggers made through the API: create, list and delete those of one workflow.

The types and their checks are in ``service/trigger_types``; the triggers from a workflow's
document are written with the workflow (``service/workflows.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flowgate import errors
from flowgate.service import trigger_types
from flowgate.service.auth import Principal
from flowgate.service.core import Services
from flowgate.service.trigger_types import TriggerView
from flowgate.service.workflows import get_workflow
from flowgate.store.base import Duplicate, TriggerRow
from flowgate.types import JSONObject


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteTrigger:
    """The create body as sent (DESIGN §3 "Shapes pinned down")."""

    body: JSONObject


def view(svc: Services, row: TriggerRow) -> TriggerView:
    return TriggerView(row=row, url=trigger_types.TRIGGER_HANDLERS[row["type"]].url(svc, row))


async def create_trigger(
    svc: Services, principal: Principal, workflow: str, cmd: WriteTrigger
) -> TriggerView:
    """Raises NotFound for an unknown or foreign workflow, InvalidRequest naming every problem."""
    principal.require("workflows:write")
    row = await get_workflow(svc, principal, workflow)
    spec, problems = trigger_types.parse_spec(cmd.body)
    if spec is None:
        raise errors.InvalidRequest(
            "Invalid trigger", details=[{"path": p.path, "message": p.message} for p in problems]
        )
    created = trigger_types.build_trigger(
        svc,
        spec,
        project_id=row["project_id"],
        workflow_id=row["id"],
        source="api",
        now=svc.clock.now(),
    )
    try:
        await svc.store.insert_trigger(created.row)
    except Duplicate as exc:  # a random id or token taken: as unlikely as it gets
        raise errors.Conflict("A trigger with that id or token already exists") from exc
    svc.notifier.schedules_changed()  # a schedule trigger may be due sooner than others
    return created


async def list_triggers(svc: Services, principal: Principal, workflow: str) -> list[TriggerView]:
    """Raises NotFound for an unknown or foreign workflow."""
    principal.require("workflows:read")
    row = await get_workflow(svc, principal, workflow)
    return [view(svc, t) for t in await svc.store.list_triggers(row["project_id"], row["id"])]


async def delete_trigger(svc: Services, principal: Principal, trigger_id: str) -> None:
    """Raises NotFound for unknown and foreign triggers, Conflict for one from a document."""
    principal.require("workflows:write")
    row = await svc.store.get_trigger(principal.project_id, trigger_id)
    if row is None:
        raise errors.NotFound("Trigger not found")
    if row["source"] == "definition":
        raise errors.Conflict(
            "This trigger comes from the workflow's definition: remove it from its trigger field"
        )
    if not await svc.store.delete_trigger(principal.project_id, trigger_id):
        raise errors.NotFound("Trigger not found")


async def update_trigger(
    svc: Services, principal: Principal, trigger_id: str, cmd: WriteTrigger
) -> TriggerView:
    """``PATCH``: the fields sent replace the stored ones (``null`` removes one); a new style
    without a secret gets a new generated one, shown in this reply only. A trigger from the
    document takes only ``enabled`` and ``signingSecret`` (the rest is its document's).

    Raises NotFound, InvalidRequest naming every problem, Conflict."""
    principal.require("workflows:write")
    row = await svc.store.get_trigger(principal.project_id, trigger_id)
    if row is None:
        raise errors.NotFound("Trigger not found")
    changes = dict(cmd.body)
    enabled = changes.pop("enabled", None)
    if row["source"] == "definition" and set(changes) - {"signingSecret"}:
        raise errors.Conflict(
            "This trigger comes from the workflow's definition: change its trigger field"
        )
    item: JSONObject = {"type": row["type"], "name": row["name"], **row["config"]}
    item.update(changes)
    spec, problems = trigger_types.parse_spec({k: v for k, v in item.items() if v is not None})
    if spec is None:
        raise errors.InvalidRequest(
            "Invalid trigger", details=[{"path": p.path, "message": p.message} for p in problems]
        )
    previous = dict(row)
    if "signingSecret" not in changes and spec.config.get("signatureStyle") != row["config"].get(
        "signatureStyle"
    ):
        previous["signing_secret_encrypted"] = None  # another style wants another secret
    updated = trigger_types.build_trigger(
        svc,
        spec,
        project_id=row["project_id"],
        workflow_id=row["workflow_id"],
        source=row["source"],
        now=row["created_at"],
        previous=TriggerRow(**previous),  # type: ignore[typeddict-item]
    )
    updated.row["updated_at"] = svc.clock.now()
    if isinstance(enabled, bool):
        updated.row["enabled"] = enabled
    await svc.store.update_trigger(updated.row)
    svc.notifier.schedules_changed()  # a new time or a re-enabled schedule is seen at once
    return updated
