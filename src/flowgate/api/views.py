"""Rows to wire shapes (camelCase, ISO timestamps, env masked): converted once, at the edge."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta

from flowgate import clock, errors
from flowgate.service.runs import RunDetail, StepView
from flowgate.service.trigger_types import TriggerView
from flowgate.store.base import (
    ConnectionRow,
    DeliveryRow,
    KeyRow,
    ProjectRow,
    RunRow,
    WorkflowRow,
    WorkflowVersionRow,
)
from flowgate.types import JSON, JSONObject

iso = clock.to_wire
#: The id half of a cursor: what ``ids.new_id`` and the ``wf_``/``conn_`` patterns produce.
_CURSOR_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")


def started_run(run: RunRow) -> JSONObject:
    """The 201 of a run start; a ``queued`` run also says why (``queuedReason``, DESIGN §11)."""
    out: JSONObject = {
        "runId": run["id"],
        "status": run["status"],
        "workflowId": run["workflow_id"],
        "workflowVersion": run["workflow_version"],
    }
    if run["status"] == "queued" and run["queued_reason"] is not None:
        out["queuedReason"] = run["queued_reason"]
    return out


def run_summary(run: RunRow) -> JSONObject:
    return {
        "id": run["id"],
        "workflowId": run["workflow_id"],
        "workflowVersion": run["workflow_version"],
        "status": run["status"],
        "input": run["input"],
        "env": {name: "***" for name in run["env"]},
        "output": run["output"],
        "error": run["error"],
        "source": run["source"],
        "parentRunId": run["parent_run_id"],
        "replayOf": run["origin_run_id"] if run["source"] == "replay" else None,
        "rerunOf": run["origin_run_id"] if run["source"] == "rerun" else None,
        "connectionId": run["connection_id"],
        "priority": run["priority"],
        "queuedReason": run["queued_reason"],
        "createdAt": iso(run["created_at"]),
        "startedAt": iso(run["started_at"]),
        "completedAt": iso(run["completed_at"]),
    }


def run_detail(detail: RunDetail) -> JSONObject:
    """The whole run; ``stepEnv`` (per-step env, from a Shipyard call) masked like ``env``."""
    step_env = detail.run["step_env"]
    return {
        **run_summary(detail.run),
        "stepEnv": (
            None
            if not step_env
            else {step_id: {name: "***" for name in own} for step_id, own in step_env.items()}
        ),
        "steps": [step_out(step) for step in detail.steps],
    }


def step_out(step: StepView) -> JSONObject:
    row = step.row
    if row is None:
        return {
            "id": step.id, "name": step.name, "type": step.type, "status": step.not_started,
            "attempt": 0, "output": None, "error": None, "startedAt": None,
            "completedAt": None, "durationMs": None,
        }  # fmt: skip
    duration = None
    if row["started_at"] is not None and row["completed_at"] is not None:
        duration = (row["completed_at"] - row["started_at"]) // _MS
    return {
        "id": step.id,
        "name": step.name,
        "type": step.type,
        "status": row["status"],
        "attempt": row["attempt"],
        "output": row["output"],
        "error": row["error"],
        "startedAt": iso(row["started_at"]),
        "completedAt": iso(row["completed_at"]),
        "durationMs": duration,
    }


def workflow_out(row: WorkflowRow) -> JSONObject:
    return {
        **row["definition"],
        "id": row["id"],
        "projectId": row["project_id"],
        "name": row["name"],
        "status": row["status"],
        "version": row["version"],
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def version_out(row: WorkflowVersionRow) -> JSONObject:
    return {
        "workflowId": row["workflow_id"],
        "version": row["version"],
        "definition": row["definition"],
        "createdAt": iso(row["created_at"]),
    }


def key_out(row: KeyRow, secret: str | None = None) -> JSONObject:
    out: JSONObject = {
        "id": row["id"],
        "name": row["name"],
        "prefix": row["prefix"],
        "scopes": list(row["scopes"]),
        "projectId": row["project_id"],
        "createdAt": iso(row["created_at"]),
        "lastUsedAt": iso(row["last_used_at"]),
        "expiresAt": iso(row["expires_at"]),
        "revokedAt": iso(row["revoked_at"]),
        "rateLimitPerMinute": row["rate_limit_per_minute"],
    }
    if secret is not None:
        out["key"] = secret
    return out


def project_out(row: ProjectRow) -> JSONObject:
    return {
        "id": row["id"],
        "orgId": row["org_id"],
        "name": row["name"],
        "runQuotaPerDay": row["run_quota_per_day"],
        "eventBufferSecs": row["event_buffer_secs"],
        "createdAt": iso(row["created_at"]),
    }


def encode_cursor(created_at: datetime, item_id: str) -> str:
    raw = f"{clock.to_millis(created_at)}:{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """Raises InvalidRequest for a cursor this server did not hand out."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, _, item_id = raw.partition(":")
        if not _CURSOR_ID.fullmatch(item_id):
            raise ValueError(cursor)
        return clock.from_millis(int(millis)), item_id
    except (ValueError, OverflowError, OSError) as exc:  # a time beyond datetime's range
        raise errors.InvalidRequest("Invalid cursor") from exc


def paged(
    rows: list[JSON], raw_rows: list[RunRow] | list[WorkflowRow], limit: int
) -> tuple[list[JSON], bool, str | None]:
    """Trim a ``limit + 1`` fetch to ``limit`` and say whether there is more, with the cursor."""
    has_more = len(rows) > limit
    shown = rows[:limit]
    cursor = None
    if has_more:
        last = raw_rows[limit - 1]
        cursor = encode_cursor(last["created_at"], last["id"])
    return shown, has_more, cursor


_MS = timedelta(milliseconds=1)


def connection_out(row: ConnectionRow) -> JSONObject:
    return {
        "id": row["id"],
        "name": row["name"],
        "type": row["type"],
        "config": row["config"],
        "hasCredentials": bool(row["credentials_encrypted"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
    }


def trigger_out(view: TriggerView, *, created: bool = False) -> JSONObject:
    """The signing secret appears only in the reply that created the trigger."""
    row = view.row
    out: JSONObject = {
        "id": row["id"],
        "type": row["type"],
        "name": row["name"],
        "workflowId": row["workflow_id"],
        "enabled": row["enabled"],
        "source": row["source"],
        "url": view.url,
        "nextRunAt": iso(row["next_run_at"]),
        "createdAt": iso(row["created_at"]),
    }
    if created:
        out["signingSecret"] = view.signing_secret
    return out


def delivery_out(row: DeliveryRow) -> JSONObject:
    """An inbox entry: headers as masked when stored; the body as text (bytes that are not
    UTF-8 shown as U+FFFD)."""
    body = row["body"]
    return {
        "id": row["id"],
        "triggerId": row["trigger_id"],
        "workflowId": row["workflow_id"],
        "source": row["source"],
        "receivedAt": iso(row["received_at"]),
        "method": row["method"],
        "path": row["path"],
        "headers": row["headers"],
        "body": None if body is None else body.decode(errors="replace"),
        "verdict": row["verdict"],
        "reason": row["reason"],
        "runId": row["run_id"],
    }
