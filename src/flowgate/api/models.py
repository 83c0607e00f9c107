"""Request bodies, validated strictly at the HTTP edge (camelCase on the wire)."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)


class RunRequest(_Body):
    # Unknown fields are kept (``model_extra``) so that the route can answer with a hint: the
    # usual slip is sending the input itself, ``{"customerId": …}``, without ``{"input": …}``.
    # The schema still says none is allowed.
    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})

    input: Any = Field(None, description="The workflow's input: a JSON object.")
    env: dict[str, StrictStr] | None = Field(None, description="Overrides of the workflow's env.")
    connection_id: StrictStr | None = Field(None, alias="connectionId", max_length=80)
    idempotency_key: StrictStr | None = Field(
        None, alias="idempotencyKey", min_length=1, max_length=500
    )
    priority: StrictInt = Field(0, ge=-100, le=100, description="Higher runs first.")


class KeyRequest(_Body):
    name: StrictStr = Field(min_length=1, max_length=200)
    scopes: list[StrictStr] = Field(min_length=1)
    project_id: StrictStr | None = Field(None, alias="projectId")
    expires_at: AwareDatetime | None = Field(None, alias="expiresAt", strict=False)
    rate_limit_per_minute: StrictInt | None = Field(
        None, alias="rateLimitPerMinute", ge=1, le=1_000_000
    )


class ProjectRequest(_Body):
    name: StrictStr = Field(min_length=1, max_length=200)
    id: StrictStr | None = Field(None, pattern=r"^prj_[A-Za-z0-9_-]{1,59}$")
    org_id: StrictStr | None = Field(None, alias="orgId", pattern=r"^[A-Za-z0-9_-]{1,64}$")


class BatchRequest(_Body):
    runs: list[dict[str, Any]] = Field(
        min_length=1, max_length=1000, description="Up to 1,000 run requests, each as for /run."
    )


class BulkRunsRequest(_Body):
    """The same filters as ``GET /api/v1/runs``; ``dryRun`` only counts."""

    workflow_id: StrictStr | None = Field(None, alias="workflowId")
    status: StrictStr | list[StrictStr] | None = None
    source: StrictStr | None = None
    created_after: AwareDatetime | None = Field(None, alias="createdAfter", strict=False)
    created_before: AwareDatetime | None = Field(None, alias="createdBefore", strict=False)
    dry_run: bool = Field(False, alias="dryRun")


class ConnectionRequest(_Body):
    id: StrictStr | None = None
    name: StrictStr | None = Field(None, min_length=1, max_length=200)
    type: StrictStr | None = None
    config: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None


class ProjectPatch(_Body):
    name: StrictStr | None = Field(None, min_length=1, max_length=200)
    run_quota_per_day: StrictInt | None = Field(None, alias="runQuotaPerDay", ge=0)
    event_buffer_secs: StrictInt | None = Field(
        None,
        alias="eventBufferSecs",
        ge=0,
        le=604_800,
        description="Seconds an event sent before anyone waits is kept when the send names no "
        "buffer_secs; null or 0: not kept.",
    )


class TriggerRequest(_Body):
    """DESIGN §3 "Shapes pinned down"; each type checks the fields it takes and refuses others."""

    type: StrictStr = Field(description="The trigger type: `api`, `webhook` or `schedule`.")
    name: StrictStr | None = Field(None, min_length=1, max_length=200)
    signature_style: Any = Field(None, alias="signatureStyle")
    signing_secret: Any = Field(None, alias="signingSecret")
    cron: Any = None
    timezone: Any = None
    input: Any = None
    catch_up: Any = Field(None, alias="catchUp")


class TriggerPatch(_Body):
    """``PATCH /api/v1/triggers/{id}``: the fields sent replace the stored ones."""

    name: StrictStr | None = Field(None, min_length=1, max_length=200)
    signature_style: Any = Field(None, alias="signatureStyle")
    signing_secret: Any = Field(None, alias="signingSecret")
    cron: Any = None
    timezone: Any = None
    input: Any = None
    catch_up: Any = Field(None, alias="catchUp")
    enabled: StrictBool | None = None
