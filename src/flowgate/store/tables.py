"""The schema, as SQLAlchemy Core tables. Alembic revisions must produce exactly this."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from flowgate import clock, jsonvalue


class UTCMillis(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime stored as epoch milliseconds, so SQLite and PostgreSQL agree."""

    impl = sa.BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else clock.to_millis(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:
        return None if value is None else clock.from_millis(value)


class SQLiteJSON(sa.types.TypeDecorator[Any]):
    """JSON kept as TEXT on SQLite. A column declared ``JSON`` there has NUMERIC affinity, which
    turns the text ``1`` into the integer 1 and breaks reading it back as JSON."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else jsonvalue.dumps_str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else orjson.loads(value)


JSONType = (
    sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(SQLiteJSON(), "sqlite")
)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _created_at() -> sa.Column[Any]:
    return sa.Column("created_at", UTCMillis(), nullable=False)


projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("run_quota_per_day", sa.Integer, nullable=True),
    _created_at(),
    # Seconds a send keeps an event nobody waits for yet, when it names no ``buffer_secs``.
    sa.Column("event_buffer_secs", sa.Integer, nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", JSONType, nullable=False),
    sa.Column("rate_limit_per_minute", sa.Integer, nullable=True),
    sa.Column("is_bootstrap", sa.Boolean, nullable=False, server_default=sa.false()),
    _created_at(),
    sa.Column("last_used_at", UTCMillis(), nullable=True),
    sa.Column("expires_at", UTCMillis(), nullable=True),
    sa.Column("revoked_at", UTCMillis(), nullable=True),
    sa.Index(None, "project_id"),
)

# Client-chosen workflow and connection ids are unique per project, not globally: two projects
# may both have ``wf_daily_report``, and nothing tells one project another's ids.
workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("id", sa.String(80), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("definition", JSONType, nullable=False),
    _created_at(),
    sa.Column("updated_at", UTCMillis(), nullable=False),
    sa.PrimaryKeyConstraint("project_id", "id"),
    sa.UniqueConstraint("project_id", "name"),
)

workflow_versions = sa.Table(
    "workflow_versions",
    metadata,
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("workflow_id", sa.String(80), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("definition", JSONType, nullable=False),
    _created_at(),
    sa.PrimaryKeyConstraint("project_id", "workflow_id", "version"),
    sa.ForeignKeyConstraint(
        ["project_id", "workflow_id"], ["workflows.project_id", "workflows.id"]
    ),
)

connections = sa.Table(
    "connections",
    metadata,
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("id", sa.String(80), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("credentials_encrypted", sa.Text, nullable=True),
    _created_at(),
    sa.Column("updated_at", UTCMillis(), nullable=False),
    sa.PrimaryKeyConstraint("project_id", "id"),
    sa.Index(None, "project_id"),
)

# Ways to start one workflow (DESIGN §2). ``source`` is ``api`` (made through the triggers API,
# left alone by definition changes) or ``definition`` (from the document's ``trigger:`` field,
# rewritten with it). ``token`` names a webhook's URL, so it is unique across projects;
# ``next_run_at`` is a schedule's next due time.
triggers = sa.Table(
    "triggers",
    metadata,
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("id", sa.String(80), nullable=False),
    sa.Column("workflow_id", sa.String(80), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("token", sa.String(64), nullable=True, unique=True),
    sa.Column("signing_secret_encrypted", sa.Text, nullable=True),
    _created_at(),
    sa.Column("updated_at", UTCMillis(), nullable=False),
    sa.Column("next_run_at", UTCMillis(), nullable=True),
    sa.PrimaryKeyConstraint("project_id", "id"),
    sa.ForeignKeyConstraint(
        ["project_id", "workflow_id"], ["workflows.project_id", "workflows.id"]
    ),
    sa.Index(None, "project_id", "workflow_id"),
    sa.Index(None, "next_run_at"),
)

#: Every request to a webhook URL, accepted or not, kept for FLOWGATE_INBOX_DAYS (the inbox).
trigger_deliveries = sa.Table(
    "trigger_deliveries",
    metadata,
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("trigger_id", sa.String(80), nullable=False),
    sa.Column("received_at", UTCMillis(), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.String(2000), nullable=False),
    sa.Column("query", JSONType, nullable=False),
    sa.Column("headers", JSONType, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=True),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    #: The signature headers as received (an HMAC does not reveal its key), kept apart from the
    #: masked ``headers`` so that a delivery can be checked again after its secret is fixed.
    sa.Column("signature_headers", JSONType, nullable=True),
    #: Set on an accepted timestamped delivery (Stripe's timestamp and signature, Standard
    #: Webhooks' ``webhook-id``): the unique index refuses the same one twice (a replay).
    sa.Column("replay_key", sa.String(300), nullable=True),
    #: The workflow called, and how: ``webhook`` or a dialect (``pinkfish``, ``axiom``, ...).
    sa.Column("workflow_id", sa.String(80), nullable=True),
    sa.Column("source", sa.String(16), nullable=True),
    #: A dialect call's run as translated (``{input, env, stepEnv}``), to start it again.
    sa.Column("run_start", JSONType, nullable=True),
    sa.PrimaryKeyConstraint("project_id", "id"),
    sa.Index(None, "project_id", "trigger_id", "received_at"),
    sa.Index(None, "project_id", "workflow_id", "received_at"),
    sa.Index(None, "received_at"),
    sa.Index(None, "project_id", "trigger_id", "replay_key", unique=True),
)

#: A file part of a multipart webhook call, stored at ``{data_dir}/{path}`` and served by
#: ``GET /api/v1/files/{id}``; deleted with the inbox after FLOWGATE_INBOX_DAYS.
uploaded_files = sa.Table(
    "uploaded_files",
    metadata,
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("trigger_id", sa.String(80), nullable=False),
    sa.Column("filename", sa.String(1000), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("path", sa.String(300), nullable=False),
    _created_at(),
    sa.PrimaryKeyConstraint("project_id", "id"),
    sa.Index(None, "created_at"),
)

#: One row per schedule trigger and due time: the unique key that makes each due time start
#: exactly one run, whatever the number of processes.
schedule_fires = sa.Table(
    "schedule_fires",
    metadata,
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("trigger_id", sa.String(80), nullable=False),
    sa.Column("due_at", UTCMillis(), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    _created_at(),
    sa.PrimaryKeyConstraint("project_id", "trigger_id", "due_at"),
)

#: A durable wait for an outside event (DESIGN §6): a ``wait_for_event`` step's (``workflow_step``)
#: or a standalone one (``job_run``). At most one waiting trigger per project and key.
event_triggers = sa.Table(
    "event_triggers",
    metadata,
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("event_key", sa.String(512), nullable=False),
    sa.Column("source_type", sa.String(16), nullable=False),
    sa.Column("workflow_run_id", sa.String(64), nullable=True),
    #: The waiting attempt's ``step_runs.id``; the triggers of one ``anyOf`` wait share it.
    sa.Column("workflow_step_run_id", sa.String(64), nullable=True),
    sa.Column("job_run_id", sa.String(64), nullable=True),
    #: One of several keys a step waits for: its output is ``{key, payload}``.
    sa.Column("any_of", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("request_payload", JSONType, nullable=True),
    sa.Column("response_payload", JSONType, nullable=True),
    sa.Column("timeout_secs", sa.Float, nullable=False),
    sa.Column("requested_at", UTCMillis(), nullable=False),
    sa.Column("received_at", UTCMillis(), nullable=True),
    sa.Column("expires_at", UTCMillis(), nullable=False),
    #: When it left ``waiting`` (received, timed out, canceled): what purge counts from.
    sa.Column("ended_at", UTCMillis(), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("sent_by", sa.String(120), nullable=True),
    #: The ``Idempotency-Key`` of the send that resolved it: the same key answers again.
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.PrimaryKeyConstraint("project_id", "id"),
    sa.Index(
        "ix_event_triggers_waiting_key",
        "project_id",
        "event_key",
        unique=True,
        sqlite_where=sa.text("status = 'waiting'"),
        postgresql_where=sa.text("status = 'waiting'"),
    ),
    sa.Index("ix_event_triggers_key", "project_id", "event_key", "requested_at"),
    sa.Index("ix_event_triggers_requested", "project_id", "requested_at", "id"),
    sa.Index("ix_event_triggers_expiry", "status", "expires_at"),
    sa.Index("ix_event_triggers_ended", "status", "ended_at"),
    sa.Index("ix_event_triggers_run", "workflow_run_id"),
)

#: An event sent with ``buffer_secs`` while nothing waited for its key: the first wait on the key
#: created before ``expires_at`` takes it and completes at once.
buffered_events = sa.Table(
    "buffered_events",
    metadata,
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("event_key", sa.String(512), nullable=False),
    sa.Column("payload", JSONType, nullable=True),
    sa.Column("sent_by", sa.String(120), nullable=True),
    _created_at(),
    sa.Column("expires_at", UTCMillis(), nullable=False),
    sa.PrimaryKeyConstraint("project_id", "event_key"),
    sa.Index(None, "expires_at"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("workflow_id", sa.String(80), nullable=False),
    sa.Column("workflow_version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("input", JSONType, nullable=False),
    sa.Column("env", JSONType, nullable=False),
    sa.Column("output", JSONType, nullable=True),
    sa.Column("error", JSONType, nullable=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("parent_run_id", sa.String(64), nullable=True),
    sa.Column("connection_id", sa.String(80), nullable=True),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("concurrency_key", sa.String(500), nullable=True),
    sa.Column("queued_reason", JSONType, nullable=True),
    sa.Column("lease_owner", sa.String(80), nullable=True),
    sa.Column("lease_expires_at", UTCMillis(), nullable=True),
    sa.Column("lease_epoch", sa.Integer, nullable=False, server_default="0"),
    sa.Column("crash_count", sa.Integer, nullable=False, server_default="0"),
    #: Env for single steps over the run's ``env``: ``{stepId: {NAME: value}}`` (Shipyard's
    #: ``vessel_overrides``), or null.
    sa.Column("step_env", JSONType, nullable=True),
    #: The run a replay or rerun copies (its ``source`` says which), or null.
    sa.Column("origin_run_id", sa.String(64), nullable=True),
    sa.Column("wake_at", UTCMillis(), nullable=True),
    _created_at(),
    sa.Column("started_at", UTCMillis(), nullable=True),
    sa.Column("completed_at", UTCMillis(), nullable=True),
    sa.Index("ix_runs_project_created", "project_id", "created_at", "id"),
    sa.Index("ix_runs_project_status_created", "project_id", "status", "created_at", "id"),
    sa.Index("ix_runs_project_workflow_created", "project_id", "workflow_id", "created_at", "id"),
    sa.Index("ix_runs_claim", "status", "priority", "created_at"),
    sa.Index("ix_runs_parent", "parent_run_id"),
    sa.Index("ix_runs_wake", "status", "wake_at"),
    sa.Index(
        "ix_runs_claimable",
        "priority",
        "created_at",
        postgresql_where=sa.text("status IN ('pending', 'waiting', 'running')"),
        sqlite_where=sa.text("status IN ('pending', 'waiting', 'running')"),
    ),
)

step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("step_id", sa.String(200), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("output", JSONType, nullable=True),
    sa.Column("error", JSONType, nullable=True),
    sa.Column("started_at", UTCMillis(), nullable=True),
    sa.Column("completed_at", UTCMillis(), nullable=True),
    sa.UniqueConstraint("run_id", "step_id", "attempt"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("workflow_id", sa.String(80), primary_key=True),
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("input", JSONType, nullable=True),
    _created_at(),
    sa.Column("expires_at", UTCMillis(), nullable=False),
)

# Per-key request counts per one-minute window, shared by every API process on one database
# (service/ratelimit.py). ``count`` is what processes have claimed, used or not; ``granted`` is
# what the last claim got, so one upsert can both grant and say how much it granted.
rate_counters = sa.Table(
    "rate_counters",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("category", sa.String(16), primary_key=True),
    sa.Column("window_minute", sa.BigInteger, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("granted", sa.Integer, nullable=False),
)
