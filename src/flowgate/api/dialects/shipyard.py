"""The Shipyard dialect (DESIGN §4): Shipyard's "Trigger Fleet" API call, answered by flowgate.

``POST /orgs/{orgId}/projects/{projectId}/fleets/{fleetId}/fleetruns``: a fleet is a workflow,
a vessel one of its steps, a fleet run a run (``source: shipyard``). The body's top-level
``environment_variable_overrides`` become the run's ``env``; each vessel's, that step's own env
(``StartRun.step_env``, resolved by the service from a step name or id). Every answer is
Shipyard's ``{"request": {"id": <X-Request-Id>}, "data": …}``: 201 with the ids, or ``data: null``
with 401 (key), 429 (rate limit, quota) or 400 (anything else). docs/migrate/shipyard.md moves a
client here and states the choices Shipyard's documentation leaves open.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from flowgate import errors
from flowgate.api.body import parse_json
from flowgate.api.deps import ServicesDep, api_key_of
from flowgate.api.errors import rate_limit_headers, register_error_shape, status_of
from flowgate.api.responses import JSONResponse
from flowgate.api.routes.hooks import arrival_of, read_body
from flowgate.service.auth import authenticate
from flowgate.service.dialects import DialectCall, start_dialect_run
from flowgate.service.ratelimit import Category
from flowgate.service.runs import StartRun
from flowgate.types import JSON, JSONObject

router = APIRouter(tags=["shipyard"])

PATH_PREFIX = "/orgs/"
KEY_HEADER = "x-shipyard-api-key"
OVERRIDES = "environment_variable_overrides"
VESSELS = "vessel_overrides"
_BODY_KEYS = frozenset({VESSELS, OVERRIDES})
_VESSEL_KEYS = frozenset({"name", OVERRIDES})
_MAX_IDEMPOTENCY_KEY = 500

Overrides = dict[str, str]


def _answer(
    data: JSON, request_id: str, *, status_code: int, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"request": {"id": request_id}, "data": data}, status_code=status_code, headers=headers
    )


def _status(exc: errors.FlowgateError) -> int:
    """Shipyard documents 201 and 400 only; a bad key is 401, and a rate limit or quota stays
    429 so that clients back off instead of giving up (docs/decisions.md)."""
    native = status_of(exc)
    if native in (401, 403):
        return 401
    if native in (429, 500):
        return native
    return 400


def render_error(exc: errors.FlowgateError, request_id: str) -> Response:
    """``{"request": {"id"}, "data": null}``; the native code in ``X-Flowgate-Error-Code``."""
    headers = {**rate_limit_headers(exc), "X-Flowgate-Error-Code": exc.code}
    return _answer(None, request_id, status_code=_status(exc), headers=headers)


register_error_shape(PATH_PREFIX, render_error)


def _key_of(request: Request) -> str | None:
    """``X-Shipyard-API-Key``, else the native ``x-api-key`` / ``Authorization: Bearer``."""
    key = request.headers.get(KEY_HEADER, "").strip()
    return key or api_key_of(request)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and len(key) > _MAX_IDEMPOTENCY_KEY:
        raise errors.InvalidRequest(
            f"Idempotency-Key must be at most {_MAX_IDEMPOTENCY_KEY} characters"
        )
    return key or None


def _invalid(path: list[str | int], message: str) -> errors.InvalidRequest:
    where = ".".join(str(part) for part in path)
    return errors.InvalidRequest(
        f"{where} {message}", details=[{"path": list(path), "message": message}]
    )


def _object(value: JSON, path: list[str | int], allowed: frozenset[str]) -> JSONObject:
    if not isinstance(value, dict):
        raise _invalid(path, "must be an object")
    for name in value:
        if name not in allowed:
            raise _invalid([*path, name], f"is not a known field ({', '.join(sorted(allowed))})")
    return value


def _overrides(value: JSON, path: list[str | int]) -> Overrides:
    """``{NAME: "value"}``: ``""`` sets a variable empty, ``null`` keeps its default."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(path, "must be an object of strings")
    kept: Overrides = {}
    for name, text in value.items():
        if isinstance(text, str):
            kept[name] = text
        elif text is not None:
            raise _invalid([*path, name], "must be a string or null")
    return kept


def _vessels(value: JSON) -> dict[str, Overrides]:
    """Each vessel's overrides by its name (a step name or id); the same name twice merges."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise _invalid([VESSELS], "must be a list")
    by_name: dict[str, Overrides] = {}
    for index, item in enumerate(value):
        vessel = _object(item, [VESSELS, index], _VESSEL_KEYS)
        name = vessel.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid([VESSELS, index, "name"], "must be a non-empty string")
        own = _overrides(vessel.get(OVERRIDES), [VESSELS, index, OVERRIDES])
        by_name[name] = {**by_name.get(name, {}), **own}
    return by_name


def parse_overrides(raw: bytes) -> tuple[Overrides | None, dict[str, Overrides] | None]:
    """The run's env and the per-step env of a request body; an empty body has neither.
    Raises InvalidRequest for a body that is not JSON or not Shipyard's shape."""
    if not raw.strip():
        return None, None
    body = _object(parse_json(raw), ["body"], _BODY_KEYS)
    env = _overrides(body.get(OVERRIDES), [OVERRIDES])
    return env or None, _vessels(body.get(VESSELS)) or None


@router.post(
    "/orgs/{org_id}/projects/{project_id}/fleets/{fleet_id}/fleetruns",
    status_code=201,
    summary="Shipyard: trigger a fleet (start a run of the workflow)",
)
async def trigger_fleet(
    org_id: str, project_id: str, fleet_id: str, request: Request, svc: ServicesDep
) -> Response:
    principal = await authenticate(svc, _key_of(request), Category.EXECUTE)
    principal.require("workflows:execute")  # a key that cannot trigger is 401 before any 400
    body = await read_body(request, svc.settings.max_body_bytes)
    env, step_env = parse_overrides(body)
    if (org_id, project_id) != (principal.org_id, principal.project_id):
        raise errors.NotFound("Project not found")
    run = StartRun(
        workflow=fleet_id, env=env, step_env=step_env, idempotency_key=_idempotency_key(request)
    )
    call = DialectCall(
        source="shipyard",
        target=fleet_id,
        run=run,
        arrival=arrival_of(request, body),
        extra_secret_headers=frozenset({KEY_HEADER}),
    )
    result = await start_dialect_run(svc, principal, call)
    started = result.started.run
    headers = {"X-Run-Id": started["id"]}
    if result.started.replayed:
        headers["Idempotent-Replayed"] = "true"
    data: JSONObject = {
        "fleet_id": result.workflow["id"],
        "project_id": principal.project_id,
        "org_id": principal.org_id,
        "fleet_run_id": started["id"],
    }
    return _answer(data, str(request.state.request_id), status_code=201, headers=headers)
