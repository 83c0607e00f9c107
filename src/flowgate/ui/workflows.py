"""The workflows pages: the list (``/ui/workflows``) and a workflow's page (``/ui/workflows/{id}``,
id or exact name, like the API): its definition as YAML, versions and their diffs, triggers with
ready ``curl`` lines, the inbox with replay, Activate / Pause, and a run form built from its
``inputSchema``.

Every action goes through the service function the API uses; a run started here has the source
``ui``. The form's fields are decided by pure functions (``form_fields``, ``read_form``) so that
what a field becomes in the run's input is testable without a browser.
"""

from __future__ import annotations

import asyncio
import difflib
import io
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from ruamel.yaml import YAML
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import LiteralScalarString
from starlette.datastructures import FormData

from flowgate import errors
from flowgate.api import views
from flowgate.api.body import parse_json
from flowgate.api.errors import status_of
from flowgate.service import dialects, webhooks
from flowgate.service import runs as run_service
from flowgate.service import triggers as trigger_service
from flowgate.service import workflows as service
from flowgate.service.core import Services
from flowgate.service.trigger_types import TriggerView
from flowgate.store.base import (
    DeliveryRow,
    Page,
    WorkflowRow,
    WorkflowStatus,
    WorkflowVersionRow,
)
from flowgate.types import JSON, JSONObject
from flowgate.ui.pages import (
    PAGE_SIZE,
    FormField,
    Viewer,
    current_viewer,
    form_viewer,
    pretty,
    render,
    router,
    run_row,
    svc_of,
    to_login,
)

#: How many inbox entries the page shows (the API pages through the rest).
INBOX_SIZE = 20
#: A delivery's body is shown up to this many characters.
BODY_PREVIEW = 4000
#: The keys of a definition and of a step in the order people write them. PostgreSQL's JSONB
#: does not keep the order a document was sent in, so the YAML puts these first, in this order,
#: on both databases (the rest follow as stored): a diff between versions reads the same on both.
_TOP_ORDER = (
    "name", "description", "trigger", "inputSchema", "concurrency", "env", "timeoutSecs",
    "retry", "steps", "output",
)  # fmt: skip
_STEP_ORDER = (
    "id", "name", "description", "type", "action", "connectionId", "if", "retry", "timeoutSecs",
    "continueOnError", "config",
)  # fmt: skip
_DIFF = re.compile(r"\A(\d{1,9})\.\.(\d{1,9})\Z")
_RUN_KEY = re.compile(r"\Aui-[A-Za-z0-9_-]{16,64}\Z")
_SHELL_SAFE = re.compile(r"\A[A-Za-z0-9:/._~%+=@-]+\Z")


# --- the list -------------------------------------------------------------------------------------


@router.get("/workflows")
async def workflows_page(request: Request) -> Response:
    viewer = await current_viewer(request)
    if viewer is None:
        return to_login(request)
    svc = svc_of(request)
    cursor = request.query_params.get("cursor") or None
    rows = await service.list_workflows(
        svc, viewer.principal, Page(limit=PAGE_SIZE + 1, after=views.decode_cursor(cursor))
    )
    shown = rows[:PAGE_SIZE]
    latest = {}
    if viewer.principal.has("runs:read"):
        latest = await service.latest_runs(svc, viewer.principal, [w["id"] for w in shown])
    next_url = None
    if len(rows) > PAGE_SIZE:
        last = shown[-1]
        next_url = "/ui/workflows?cursor=" + quote(
            views.encode_cursor(last["created_at"], last["id"]), safe=""
        )
    items = [
        {
            **_summary(row),
            "lastRun": run_row(latest[row["id"]]) if row["id"] in latest else None,
        }
        for row in shown
    ]
    return render(
        "workflows.html",
        title="Workflows",
        section="workflows",
        viewer=viewer,
        workflows=items,
        can_read_runs=viewer.principal.has("runs:read"),
        next_url=next_url,
        first_url="/ui/workflows" if cursor else None,
    )


def _summary(row: WorkflowRow) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "version": row["version"],
        "updatedAt": views.iso(row["updated_at"]),
        "url": _url(row["id"]),
    }


def _url(workflow_id: str) -> str:
    return f"/ui/workflows/{quote(workflow_id, safe='')}"


# --- a workflow's page ---------------------------------------------------------------------------


@router.get("/workflows/{workflow_id}")
async def workflow_page(request: Request, workflow_id: str) -> Response:
    viewer = await current_viewer(request)
    if viewer is None:
        return to_login(request)
    svc = svc_of(request)
    row = await service.read_workflow(svc, viewer.principal, workflow_id)
    diff = _diff_range(request.query_params)
    page = await _workflow_view(svc, viewer, row, diff=diff)
    return page.render(form_fields(_input_schema(row)))


@router.post("/workflows/{workflow_id}/activate")
async def activate(request: Request, workflow_id: str, csrf: FormField = None) -> Response:
    return await _set_status(request, workflow_id, csrf, WorkflowStatus.ACTIVE)


@router.post("/workflows/{workflow_id}/pause")
async def pause(request: Request, workflow_id: str, csrf: FormField = None) -> Response:
    return await _set_status(request, workflow_id, csrf, WorkflowStatus.PAUSED)


async def _set_status(
    request: Request, workflow_id: str, csrf: str | None, status: WorkflowStatus
) -> Response:
    found = await form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    svc = svc_of(request)
    try:
        row = await service.set_workflow_status(svc, found.principal, workflow_id, status)
    except errors.Conflict as exc:
        current = await service.read_workflow(svc, found.principal, workflow_id)
        page = await _workflow_view(svc, found, current, notice=exc.message)
        return page.render(form_fields(_input_schema(current)), status_code=status_of(exc))
    return RedirectResponse(_url(row["id"]), status_code=303)


@router.post("/workflows/{workflow_id}/run")
async def start_run(request: Request, workflow_id: str) -> Response:
    """The run form: one field per top-level property of ``inputSchema`` (or raw JSON). Its
    problems, and the service's (``VALIDATION_ERROR`` paths), are shown beside their fields."""
    form = await request.form()
    found = await form_viewer(request, _text(form, "csrf"))
    if isinstance(found, RedirectResponse):
        return found
    svc = svc_of(request)
    row = await service.read_workflow(svc, found.principal, workflow_id)
    fields = form_fields(_input_schema(row))
    submitted = read_form(fields, form)
    if not submitted.problems:
        command = run_service.StartRun(
            workflow=row["id"],
            input=submitted.input,
            idempotency_key=submitted.key,
            source="ui",
        )
        try:
            started = await run_service.start_run(svc, found.principal, command)
        except (
            errors.ValidationFailed,
            errors.InvalidRequest,
            errors.InvalidStatus,
            errors.QuotaExceeded,
            errors.NotFound,
            errors.IdempotencyKeyReused,
        ) as exc:
            submitted = submitted.with_error(exc)
            page = await _workflow_view(svc, found, row, notice=submitted.notice)
            return page.render(submitted.fields, status_code=status_of(exc), run_form=submitted)
        return RedirectResponse(f"/ui/runs/{quote(started.run['id'], safe='')}", status_code=303)
    page = await _workflow_view(svc, found, row, notice=submitted.notice)
    return page.render(submitted.fields, status_code=400, run_form=submitted)


@router.post("/workflows/{workflow_id}/deliveries/{delivery_id}/replay")
async def replay_delivery(
    request: Request,
    workflow_id: str,
    delivery_id: str,
    csrf: FormField = None,
    trigger: FormField = None,
) -> Response:
    """A webhook delivery goes through its trigger again (signature checked as when it came);
    a dialect call is started again as it was translated."""
    found = await form_viewer(request, csrf)
    if isinstance(found, RedirectResponse):
        return found
    svc = svc_of(request)
    row = await service.read_workflow(svc, found.principal, workflow_id)
    try:
        if trigger:
            hook = await webhooks.replay_delivery(
                svc, found.principal, trigger, delivery_id, parse_json=parse_json
            )
            run_id = hook.started.run["id"]
        else:
            started = await dialects.replay_dialect_delivery(
                svc, found.principal, row["id"], delivery_id
            )
            run_id = started.run["id"]
    except (errors.InvalidRequest, errors.InvalidStatus, errors.ValidationFailed) as exc:
        page = await _workflow_view(svc, found, row, notice=f"Replay refused: {exc.message}")
        return page.render(form_fields(_input_schema(row)), status_code=status_of(exc))
    return RedirectResponse(f"/ui/runs/{quote(run_id, safe='')}", status_code=303)


# --- what the page shows -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _WorkflowView:
    viewer: Viewer
    context: dict[str, Any]

    def render(
        self,
        fields: list[FormInput],
        *,
        status_code: int = 200,
        run_form: SubmittedForm | None = None,
    ) -> Response:
        return render(
            "workflow.html",
            status_code=status_code,
            viewer=self.viewer,
            section="workflows",
            fields=fields,
            form_errors=run_form.general if run_form else [],
            run_key=run_form.key if run_form and run_form.key else _new_run_key(),
            **self.context,
        )


async def _workflow_view(
    svc: Services,
    viewer: Viewer,
    row: WorkflowRow,
    *,
    diff: tuple[int, int] | None = None,
    notice: str | None = None,
) -> _WorkflowView:
    principal = viewer.principal
    versions = await service.list_versions(svc, principal, row["id"])
    triggers = await trigger_service.list_triggers(svc, principal, row["id"])
    deliveries = await dialects.list_workflow_deliveries(
        svc, principal, row["id"], Page(limit=INBOX_SIZE)
    )
    definitions = {v["version"]: v["definition"] for v in versions}
    definitions.setdefault(row["version"], row["definition"])
    yaml_text = await asyncio.to_thread(definition_yaml, row["definition"])
    diff_view = None
    if diff is not None:
        diff_view = await asyncio.to_thread(_diff_view, definitions, *diff)
    base = svc.settings.base_url
    schema = _input_schema(row)
    context = {
        "title": f"Workflow {row['name']}",
        "workflow": _summary(row),
        "yaml": yaml_text,
        "versions": _versions_view(row, versions, definitions),
        "version_numbers": sorted(definitions),
        "diff": diff_view,
        "api_curl": api_curl(base, row["id"], {"input": example_of(schema)}),
        "triggers": [_trigger_view(base, row, v) for v in triggers],
        "deliveries": [_delivery_view(d) for d in deliveries],
        "can_activate": row["status"] != WorkflowStatus.ACTIVE,
        "can_pause": row["status"] == WorkflowStatus.ACTIVE,
        "notice": notice,
    }
    return _WorkflowView(viewer=viewer, context=context)


def _versions_view(
    row: WorkflowRow, versions: list[WorkflowVersionRow], kept: dict[int, JSONObject]
) -> list[dict[str, Any]]:
    """Newest first, each with a link to its diff with the version before it."""
    return [
        {
            "version": v["version"],
            "createdAt": views.iso(v["created_at"]),
            "diffUrl": (
                f"{_url(row['id'])}?diff={v['version'] - 1}..{v['version']}#diff"
                if v["version"] - 1 in kept
                else None
            ),
        }
        for v in versions
    ]


def _input_schema(row: WorkflowRow) -> JSONObject:
    schema = row["definition"].get("inputSchema")
    return schema if isinstance(schema, dict) else {}


def _diff_range(query: Mapping[str, str]) -> tuple[int, int] | None:
    """``?diff=2..3``, or ``?from=2&to=3`` (the page's compare form)."""
    raw = query.get("diff")
    if raw is None and (query.get("from") or query.get("to")):
        raw = f"{query.get('from', '')}..{query.get('to', '')}"
    if not raw:
        return None
    found = _DIFF.match(raw)
    if found is None:
        raise errors.InvalidRequest("diff must name two versions, like ?diff=1..2")
    return int(found.group(1)), int(found.group(2))


def _diff_view(definitions: dict[int, JSONObject], old: int, new: int) -> dict[str, Any]:
    """A unified diff of two versions' YAML; raises InvalidRequest for a version not kept."""
    missing = [v for v in (old, new) if v not in definitions]
    if missing:
        raise errors.InvalidRequest(f"This workflow has no version {missing[0]}")
    lines = difflib.unified_diff(
        definition_yaml(definitions[old]).splitlines(),
        definition_yaml(definitions[new]).splitlines(),
        fromfile=f"version {old}",
        tofile=f"version {new}",
        lineterm="",
    )
    return {"old": old, "new": new, "lines": [_diff_line(line) for line in lines]}


def _diff_line(line: str) -> dict[str, str]:
    if line.startswith(("+++", "---")):
        kind = "file"
    elif line.startswith("@@"):
        kind = "hunk"
    elif line.startswith("+"):
        kind = "added"
    elif line.startswith("-"):
        kind = "removed"
    else:
        kind = "context"
    return {"kind": kind, "text": line}


def _trigger_view(base: str, workflow: WorkflowRow, view: TriggerView) -> dict[str, Any]:
    """A trigger as the page shows it: its address and a ready curl. Signing secrets are
    never shown again (the API shows them once, when they are made)."""
    row = view.row
    config = row["config"]
    schema = _input_schema(workflow)
    out: dict[str, Any] = {
        "id": row["id"],
        "type": row["type"],
        "name": row["name"],
        "enabled": row["enabled"],
        "source": row["source"],
        "url": view.url,
        "signatureStyle": config.get("signatureStyle"),
        "cron": config.get("cron"),
        "timezone": config.get("timezone") or ("UTC" if row["type"] == "schedule" else None),
        "nextRunAt": views.iso(row["next_run_at"]),
        "input": None,
        "curl": None,
    }
    if row["type"] == "webhook" and view.url:
        properties = schema.get("properties")
        body_schema = properties.get("body") if isinstance(properties, dict) else None
        body = example_of(body_schema) if isinstance(body_schema, dict) else {}
        out["curl"] = webhook_curl(view.url, body)
    elif row["type"] == "schedule":
        scheduled = config.get("input")
        out["input"] = pretty(scheduled if scheduled is not None else {})
        out["curl"] = api_curl(base, workflow["id"], {"input": scheduled or {}})
    else:
        out["curl"] = api_curl(base, workflow["id"], {"input": example_of(schema)})
    return out


def _delivery_view(row: DeliveryRow) -> dict[str, Any]:
    wire = views.delivery_out(row)
    body = wire["body"]
    if isinstance(body, str) and len(body) > BODY_PREVIEW:
        body = body[:BODY_PREVIEW] + f"… ({len(body) - BODY_PREVIEW} more characters)"
    webhook = row["source"] in (None, "webhook")
    return {
        **wire,
        "body": body,
        "headersText": pretty(wire["headers"]),
        "source": row["source"] or "webhook",
        "replayTrigger": row["trigger_id"] if webhook else None,
        # A dialect call is started again from its translation, which it keeps when accepted.
        "replayable": webhook or row["run_start"] is not None,
        "runUrl": f"/ui/runs/{quote(row['run_id'], safe='')}" if row["run_id"] else None,
    }


# --- YAML and curl --------------------------------------------------------------------------------


class _Representer(RoundTripRepresenter):
    """``null`` written out (not an empty value); multi-line strings as literal blocks."""


_Representer.add_representer(
    type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
)


def definition_yaml(definition: JSONObject) -> str:
    """The definition as YAML 1.2, keys in the order people write them (``_TOP_ORDER``,
    ``_STEP_ORDER``), then as stored; never sorted. The template escapes it."""
    yaml = YAML(typ="rt")
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = _ordered(definition, _TOP_ORDER)
    steps = document.get("steps")
    if isinstance(steps, list):
        document["steps"] = [_ordered(s, _STEP_ORDER) if isinstance(s, dict) else s for s in steps]
    out = io.StringIO()
    yaml.dump(_literal_blocks(document), out)
    return out.getvalue()


def _ordered(mapping: JSONObject, order: Sequence[str]) -> JSONObject:
    first = {key: mapping[key] for key in order if key in mapping}
    return {**first, **{k: v for k, v in mapping.items() if k not in first}}


def _literal_blocks(value: JSON) -> Any:
    if isinstance(value, dict):
        return {k: _literal_blocks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_blocks(v) for v in value]
    if isinstance(value, str) and "\n" in value and value == value.strip(" \t"):
        return LiteralScalarString(value)
    return value


def example_of(schema: JSON, depth: int = 0) -> JSON:
    """A sample value for a JSON Schema: its own example, default, const or first enum value,
    else a placeholder of its type (``"string"``, ``0``, ``false``), objects with every
    property. Used for the curl lines."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = _single_type(schema)
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {name: example_of(sub, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items")
        return [example_of(items, depth + 1)] if isinstance(items, dict) else []
    placeholders: dict[str, JSON] = {
        "string": "string",
        "number": 0,
        "integer": 0,
        "boolean": False,
    }
    return placeholders.get(kind or "")


def _shell(text: str) -> str:
    """A word for a POSIX shell: as is when it is plain, else in single quotes."""
    if _SHELL_SAFE.match(text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def _body(value: JSON) -> str:
    return _shell(orjson.dumps(value).decode())


def api_curl(base: str, workflow_id: str, body: JSON) -> str:
    """Start a run through the API; the key comes from the shell's ``$FLOWGATE_API_KEY`` (in
    double quotes, so that the shell expands it)."""
    url = f"{base}/api/v1/workflows/{quote(workflow_id, safe='')}/run"
    return (
        f"curl -X POST {_shell(url)} \\\n"
        '  -H "x-api-key: $FLOWGATE_API_KEY" \\\n'
        "  -H 'content-type: application/json' \\\n"
        f"  -d {_body(body)}"
    )


def webhook_curl(url: str, body: JSON) -> str:
    return (
        f"curl -X POST {_shell(url)} \\\n"
        "  -H 'content-type: application/json' \\\n"
        f"  -d {_body(body)}"
    )


# --- the run form ---------------------------------------------------------------------------------

#: JSON Schema type → the kind of input that edits it; anything else is a JSON textarea.
_KINDS = {"string": "text", "number": "number", "integer": "integer", "boolean": "checkbox"}


@dataclass(slots=True, kw_only=True)
class FormInput:
    """One input of the run form. ``kind``: text, number, integer, checkbox, select, json, or
    raw (the whole input as JSON, when the schema names no properties)."""

    name: str
    html_id: str
    kind: str
    label: str
    required: bool = False
    hint: str | None = None
    #: select: (value, label) pairs; the value is the index into the schema's ``enum``.
    options: list[tuple[str, str]] = field(default_factory=list)
    enum: list[JSON] = field(default_factory=list)
    value: str = ""
    checked: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def form_name(self) -> str:
        return "rawInput" if self.kind == "raw" else f"input.{self.name}"

    @property
    def described_by(self) -> str:
        """The ids of its hint and error, for ``aria-describedby``."""
        ids = [f"{self.html_id}-hint"] if self.hint else []
        return " ".join(ids + ([f"{self.html_id}-error"] if self.errors else []))


def _single_type(schema: JSONObject) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None


def form_fields(schema: JSONObject) -> list[FormInput]:
    """One input per top-level property of ``schema``, prefilled with its default: the required
    ones first, in the order ``required`` lists them (PostgreSQL's JSONB keeps no key order, but
    a list keeps its order), then the others as stored. One raw JSON textarea when it names
    none."""
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return [
            FormInput(
                name="", html_id="run-input-raw", kind="raw", label="Input (JSON)", value="{}"
            )
        ]
    required = schema.get("required")
    listed = [n for n in required if n in properties] if isinstance(required, list) else []
    names = [*dict.fromkeys(listed), *(n for n in properties if n not in listed)]
    return [
        _field(index, name, properties[name], required=name in listed)
        for index, name in enumerate(names)
    ]


def _field(index: int, name: str, schema: JSON, *, required: bool) -> FormInput:
    spec = schema if isinstance(schema, dict) else {}
    enum = spec.get("enum")
    kind = "select" if isinstance(enum, list) and enum else _KINDS.get(_single_type(spec) or "")
    hint = spec.get("description")
    made = FormInput(
        name=name,
        html_id=f"run-input-{index}",
        kind=kind or "json",
        label=name,
        required=required,
        hint=hint if isinstance(hint, str) else None,
    )
    default = spec.get("default")
    if made.kind == "select" and isinstance(enum, list):
        made.enum = enum
        made.options = [
            (str(i), v if isinstance(v, str) else pretty(v)) for i, v in enumerate(enum)
        ]
        made.value = str(enum.index(default)) if default in enum else ""
    elif made.kind == "checkbox":
        made.checked = default is True
    elif default is not None:
        made.value = default if isinstance(default, str) else orjson.dumps(default).decode()
    return made


@dataclass(slots=True, kw_only=True)
class SubmittedForm:
    """The input a submitted form makes, or its problems (per field and for the whole form)."""

    fields: list[FormInput]
    input: JSONObject
    #: The form's idempotency key: submitted twice (a double click, the back button), the same
    #: form starts one run.
    key: str | None = None
    general: list[str] = field(default_factory=list)
    notice: str | None = None

    @property
    def problems(self) -> bool:
        return bool(self.general) or any(f.errors for f in self.fields)

    def with_error(self, exc: errors.FlowgateError) -> SubmittedForm:
        """The service's refusal: a ``VALIDATION_ERROR`` detail goes to the field its path
        starts with; a refusal of the whole run (a paused workflow) is the page's notice."""
        by_name = {f.name: f for f in self.fields if f.kind != "raw"}
        raw = next((f for f in self.fields if f.kind == "raw"), None)
        details = exc.details if isinstance(exc.details, list) else []
        for detail in details:
            path = detail.get("path") if isinstance(detail, dict) else None
            message = str(detail.get("message", "")) if isinstance(detail, dict) else str(detail)
            path = path if isinstance(path, list) else []
            target = by_name.get(path[0]) if path and isinstance(path[0], str) else None
            if target is not None:
                rest = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path[1:])
                target.errors.append(f"{rest}: {message}" if rest else message)
            elif raw is not None and isinstance(exc, errors.ValidationFailed):
                raw.errors.append(f"{_path_text(path)}: {message}" if path else message)
            else:
                self.general.append(f"{_path_text(path)}: {message}" if path else message)
        notice = exc.message
        if isinstance(exc, errors.ValidationFailed):
            notice = f"{exc.message}: see the fields below"
        elif isinstance(exc, errors.IdempotencyKeyReused):
            notice = "This form already started a run with other values: reload the page first"
        return SubmittedForm(
            fields=self.fields, input=self.input, key=self.key, general=self.general, notice=notice
        )


def _path_text(path: list[Any]) -> str:
    return ".".join(str(p) for p in path) or "input"


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def read_form(fields: list[FormInput], form: FormData) -> SubmittedForm:
    """The run's input from a submitted form: empty fields are left out (so a required one is
    reported ``Required`` by the schema), checkboxes are true or false, numbers and JSON are
    parsed here and a field that does not parse gets its own error."""
    shown: list[FormInput] = []
    run_input: JSONObject = {}
    for spec in fields:
        entry = FormInput(**{**_fields_of(spec), "errors": []})
        raw = _text(form, spec.form_name) or ""
        entry.value, entry.checked = raw, raw != ""
        shown.append(entry)
        try:
            present, value = _parse_field(entry, raw)
        except ValueError as exc:
            entry.errors.append(str(exc))
            continue
        if entry.kind == "raw":
            run_input = value if isinstance(value, dict) else {}
        elif present:
            run_input[entry.name] = value
    key = _text(form, "idempotencyKey")
    return SubmittedForm(
        fields=shown,
        input=run_input,
        key=key if key and _RUN_KEY.match(key) else None,
        notice="Check the fields below" if any(f.errors for f in shown) else None,
    )


def _new_run_key() -> str:
    return "ui-" + secrets.token_urlsafe(16)


def _fields_of(spec: FormInput) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in FormInput.__dataclass_fields__}


def _parse_field(entry: FormInput, raw: str) -> tuple[bool, JSON]:
    """(whether the field was filled in, its value); raises ValueError saying what is wrong."""
    if entry.kind == "checkbox":
        return True, raw != ""
    text = raw.strip() if entry.kind != "text" else raw
    if entry.kind == "raw":
        value = _json(text or "{}")
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object, like {"name": "value"}')
        return True, value
    if text == "":
        return False, None
    if entry.kind in ("number", "integer"):
        return True, _number(text)
    if entry.kind == "select":
        if not text.isdigit() or int(text) >= len(entry.enum):
            raise ValueError("choose one of the listed values")
        return True, entry.enum[int(text)]
    if entry.kind == "json":
        return True, _json(text)
    return True, raw


def _number(text: str) -> JSON:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _json(text: str) -> JSON:
    try:
        return parse_json(text.encode())
    except errors.FlowgateError as exc:
        raise ValueError(f"not valid JSON: {exc.message}") from exc
