"""The OpenAPI document as clients need it: how to authenticate, the errors each operation
really answers (in its API's own body shape), no FastAPI 422, and the webhook and dialect
endpoints described.

FastAPI builds the document from the routes; ``install`` post-processes that document once,
on the first request for ``/openapi.json``. The rules are read from the path, as the error
handlers in ``api/errors.py`` choose a dialect's body shape by path prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI

from flowgate.api.errors import HTTP_STATUS

API_KEY: Final = "ApiKeyAuth"
BEARER: Final = "BearerAuth"
SHIPYARD_KEY: Final = "ShipyardApiKey"

#: The document's introduction (``info.description``).
DESCRIPTION = (
    "Self-hosted, durable workflow automation.\n\n"
    "Authenticate with an API key in `x-api-key` or as `Authorization: Bearer <key>`. Native "
    'errors use the envelope `{"success": false, "error": {"code", "message", "details"?}}`; '
    "the dialect endpoints (`/ext`, `/api/v3`, `/orgs`, `/v1/events`) answer in the shape of the "
    "API they imitate, as each one's description says."
)

#: Operations that take no key in a header: health probes, webhook tokens, a key in the path
#: (Pinkfish webhook URLs) or in the body (Axiom).
_UNSECURED: Final = ("/healthz", "/readyz", "/hooks/", "/ext/webhook/", "/api/v3/")
#: Operations that answer no error (but 503 ``/readyz``, which FastAPI cannot see).
_NO_ERRORS: Final = ("/healthz", "/readyz")
_BODY_METHODS: Final = frozenset({"post", "put", "patch"})
_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_FASTAPI_VALIDATION: Final = ("HTTPValidationError", "ValidationError")

_SECURITY_SCHEMES: Final[dict[str, Any]] = {
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "A flowgate API key (`fgk_…`); the header name is case-insensitive.",
    },
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "The same API key as `Authorization: Bearer <key>`.",
    },
    SHIPYARD_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "X-Shipyard-API-Key",
        "description": "Shipyard's header for a flowgate API key (Shipyard endpoints only).",
    },
}

_ERROR_SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "examples": ["NOT_FOUND"]},
            "message": {"type": "string"},
            "details": {"description": "More about the error; its shape depends on the code."},
        },
    },
    "ErrorEnvelope": {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {"$ref": "#/components/schemas/Error"},
        },
    },
    "PinkfishError": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "examples": ["Unauthorized", "Not Found", "Bad Request"]},
            "message": {"type": "string"},
        },
    },
    "AxiomError": {
        "type": "object",
        "required": ["status", "message"],
        "properties": {
            "status": {"type": "string", "enum": ["error"]},
            "message": {"type": "string"},
        },
    },
    "ShipyardError": {
        "type": "object",
        "required": ["request", "data"],
        "properties": {
            "request": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string", "description": "The X-Request-Id."}},
            },
            "data": {"type": "null"},
        },
    },
    "StraitError": {
        "type": "object",
        "required": ["error", "request_id"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": [
                            "bad_request",
                            "authentication_required",
                            "forbidden",
                            "not_found",
                            "conflict",
                            "rate_limited",
                            "internal_error",
                        ],
                    },
                    "message": {"type": "string"},
                    "details": {},
                },
            },
            "request_id": {"type": "string"},
        },
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorShape:
    """How errors under ``prefix`` look: ``schema`` names a component; ``statuses``, when set,
    are the only statuses that API answers (others are folded into them)."""

    prefix: str
    schema: str
    note: str
    statuses: frozenset[int] | None = None


#: The dialects' error shapes (``register_error_shape`` in each ``api/dialects`` module);
#: everything else answers the native envelope.
ERROR_SHAPES: Final = (
    ErrorShape(
        prefix="/ext/",
        schema="PinkfishError",
        note='Errors use Pinkfish\'s body `{"error": <reason phrase>, "message"}`.',
    ),
    ErrorShape(
        prefix="/api/v3/",
        schema="AxiomError",
        note='Errors use Axiom\'s body `{"status": "error", "message"}`; a used quota is 403.',
        statuses=frozenset({400, 401, 403, 404, 413, 429}),
    ),
    ErrorShape(
        prefix="/orgs/",
        schema="ShipyardError",
        note='Errors use Shipyard\'s body `{"request": {"id"}, "data": null}`: 401 for a missing '
        "or bad key, 429 for a rate limit or quota, 400 for everything else; the native error "
        "code is in the `X-Flowgate-Error-Code` header.",
        statuses=frozenset({400, 401, 429}),
    ),
    ErrorShape(
        prefix="/v1/",
        schema="StraitError",
        note='Errors use Strait\'s body `{"error": {"code", "message", "details"?}, '
        '"request_id"}` with its lower-case codes.',
    ),
)
_NATIVE: Final = ErrorShape(prefix="/", schema="ErrorEnvelope", note="")

_RATE_LIMIT_HEADERS: Final[dict[str, Any]] = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in (
        ("Retry-After", "Seconds until a request may succeed (rate limit only)."),
        ("RateLimit-Limit", "The key's limit per minute (rate limit only)."),
        ("RateLimit-Remaining", "Requests left in the window (rate limit only)."),
        ("RateLimit-Reset", "Seconds until the window resets (rate limit only)."),
    )
}
_STATUS_TEXT: Final = {
    400: "The request is malformed or not allowed in the object's state",
    401: "Missing, unknown, revoked or expired key (or a bad webhook signature)",
    403: "The key lacks the scope",
    404: "Unknown id, or another project's",
    409: "The object's state or an earlier request conflicts with this one",
    413: "The body is larger than FLOWGATE_MAX_BODY_BYTES",
    429: "The key's rate limit or the project's run quota is used",
}

_HOOK = (
    "Starts a run of the workflow of the webhook trigger whose token is in the path. Any body is "
    "accepted (JSON, form-encoded, multipart, plain text) and the run's input is "
    '`{"body", "query", "headers", "method"}`. When the trigger has a signing secret, the '
    "signature header of its style is required (401 otherwise). Answers 202 "
    '`{"success": true, "data": {"runId", "status"}}` with `X-Run-Id`; with `x-api-wait` it waits '
    "for the end as `POST /api/v1/workflows/{id}/run` does. Every delivery is kept in the "
    "trigger's inbox."
)
_SEND = (
    'Body `{"payload": <any JSON>}` (an empty body sends `null`). '
    "An `Idempotency-Key` header is honoured. "
)
#: Descriptions of operations whose route has none: the webhook and dialect endpoints.
DESCRIPTIONS: Final[dict[tuple[str, str], str]] = {
    ("post", "/hooks/{token}"): _HOOK,
    ("put", "/hooks/{token}"): _HOOK,
    ("get", "/hooks/{token}"): _HOOK,
    ("post", "/api/v3/trigger"): (
        "Axiom style: the key is in the body and the workflow is found by its exact `name`. "
        "`data` (an array of arrays, the first one the header row) becomes `input.data` and "
        '`input.rows`. Answers 200 `{"OPEN LINK IN BROWSER": "<monitor URL of the run>"}`, or '
        '200 `{"status": "queued", "message"}` when a concurrency limit holds the run back.'
    ),
    ("post", "/api/v3/run-data"): (
        'Axiom style: `{"key", "name"}` → `{"status": "Running"|"Success"|"Failure", "data": '
        "<run output>}` for the named workflow's most recent run; none yet is 404."
    ),
    ("post", "/orgs/{org_id}/projects/{project_id}/fleets/{fleet_id}/fleetruns"): (
        "Shipyard style: starts a run of the workflow `fleet_id`. `project_id` must be the key's "
        "project and `org_id` its orgId. The optional body "
        '`{"environment_variable_overrides": {...}, "vessel_overrides": [{"name", '
        '"environment_variable_overrides"}]}` sets env for the run or for one step. Answers 201 '
        '`{"request": {"id"}, "data": {"fleet_id", "project_id", "org_id", "fleet_run_id"}}`.'
    ),
    ("get", "/v1/events"): (
        'Strait style. `{"data": [...], "has_more", "next_cursor"}`, newest first; `limit` is '
        "clamped to 100 and the cursor is the last item's `requested_at`."
    ),
    ("post", "/v1/events"): (
        'Strait style. Body `{"event_key", "timeout_secs", "request_payload"?}` → 201 a standalone '
        "`job_run` wait that clients stream or poll; a key that already waits is 409."
    ),
    ("get", "/v1/events/stats"): (
        "Strait style. `{total_count, waiting_count, received_count, timed_out_count, "
        "canceled_count, avg_wait_duration_secs}` for the key's project."
    ),
    ("post", "/v1/events/purge"): (
        'Strait style. Body `{"older_than_days", "dry_run"?}`: deletes ended triggers older than '
        'that (never waiting ones) → `{"deleted", "dry_run", "would_delete"}`.'
    ),
    ("post", "/v1/events/prefix/{prefix}/send"): (
        f"Strait style. {_SEND}Resolves every waiting trigger of the project whose key starts "
        'with the prefix → `{"resolved": n, "triggers": [...]}`.'
    ),
    ("post", "/v1/events/{event_key}/send"): (
        f"Strait style. {_SEND}The waiting trigger becomes `received` and its run resumes with "
        "the payload as the step's output; a resend of an equal payload answers 200 again; a "
        "trigger no longer waiting is 409. `?buffer_secs=` keeps an event nobody waits for yet."
    ),
    ("get", "/v1/events/{event_key}"): "Strait style. The event trigger object, every key present.",
    ("delete", "/v1/events/{event_key}"): (
        "Strait style. The trigger becomes `canceled` and its waiting step fails; a trigger no "
        "longer waiting is 409."
    ),
}


def install(app: FastAPI) -> None:
    """Serves the customized document at ``app.openapi_url``, built once."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            raw = build()
            app.openapi_schema = None  # FastAPI's own build cached it: cache only ours
            app.openapi_schema = customize(raw)
        return app.openapi_schema

    # FastAPI documents replacing this method as the way to customize the document.
    app.openapi = openapi  # type: ignore[method-assign]


def customize(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (as FastAPI built it) with security, error responses and descriptions."""
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(_SECURITY_SCHEMES)
    components.setdefault("schemas", {}).update(_ERROR_SCHEMAS)
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method in _METHODS:
                _operation(path, method, operation)
    _drop_unused(components["schemas"], doc)
    return doc


def _operation(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's; flowgate answers 400 INVALID_REQUEST instead
    shape = shape_of(path)
    description = operation.get("description") or DESCRIPTIONS.get((method, path), "")
    if shape.note:
        description = f"{description}\n\n{shape.note}".strip()
    if description:
        operation["description"] = description
    if not path.startswith(_UNSECURED):
        operation["security"] = security_of(path)
    for status in error_statuses(path, method, operation):
        responses.setdefault(str(status), _error_response(status, shape))


def shape_of(path: str) -> ErrorShape:
    """The error shape of the API ``path`` belongs to."""
    return next((s for s in ERROR_SHAPES if path.startswith(s.prefix)), _NATIVE)


def security_of(path: str) -> list[dict[str, list[str]]]:
    schemes: list[dict[str, list[str]]] = [{API_KEY: []}, {BEARER: []}]
    return [{SHIPYARD_KEY: []}, *schemes] if path.startswith("/orgs/") else schemes


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses the operation can answer, in its API's terms."""
    if path.startswith(_NO_ERRORS):
        return []
    statuses = {400, 401, 429}
    if not path.startswith("/hooks/"):
        statuses.add(403)  # every key-taking operation checks a scope
    if _names_objects(operation) or path.startswith("/api/v3/"):
        statuses.add(404)
    if method != "get":
        statuses.add(409)
    if method in _BODY_METHODS:
        statuses.add(413)
    allowed = shape_of(path).statuses
    return sorted(statuses if allowed is None else statuses & allowed)


def _names_objects(operation: dict[str, Any]) -> bool:
    """A path parameter, or a query filter naming an object (``workflowId``, ``project_id``)."""
    return any(
        p.get("in") == "path" or str(p.get("name", "")).endswith(("Id", "_id"))
        for p in operation.get("parameters", [])
    )


def _error_response(status: int, shape: ErrorShape) -> dict[str, Any]:
    text = _STATUS_TEXT[status]
    if shape is _NATIVE:
        codes = sorted({cls.code for cls, s in HTTP_STATUS.items() if s == status})
        text = f"{text}: {', '.join(f'`{code}`' for code in codes)}"
    response: dict[str, Any] = {
        "description": text,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{shape.schema}"}}
        },
    }
    if status == 429:
        response["headers"] = dict(_RATE_LIMIT_HEADERS)
    return response


def _drop_unused(schemas: dict[str, Any], doc: dict[str, Any]) -> None:
    """FastAPI's validation-error schemas go once nothing refers to them; so do error shapes
    that no operation uses."""
    for name in (*_FASTAPI_VALIDATION, *_ERROR_SCHEMAS):
        others = {key: value for key, value in schemas.items() if key != name}
        if f'"#/components/schemas/{name}"' not in json.dumps([doc["paths"], others]):
            schemas.pop(name, None)
