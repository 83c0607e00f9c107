"""event triggers: durable waits for an outside event, and events sent before anyone waits
(``buffered_events``, and each project's default buffer ``projects.event_buffer_secs``)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON_TYPE = (
    sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sa.Text(), "sqlite")
)
WAITING = sa.text("status = 'waiting'")


def upgrade() -> None:
    op.create_table(
        "event_triggers",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("event_key", sa.String(512), nullable=False),
        sa.Column("source_type", sa.String(16), nullable=False),
        sa.Column("workflow_run_id", sa.String(64), nullable=True),
        sa.Column("workflow_step_run_id", sa.String(64), nullable=True),
        sa.Column("job_run_id", sa.String(64), nullable=True),
        sa.Column("any_of", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request_payload", JSON_TYPE, nullable=True),
        sa.Column("response_payload", JSON_TYPE, nullable=True),
        sa.Column("timeout_secs", sa.Float(), nullable=False),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sent_by", sa.String(120), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "id", name="pk_event_triggers"),
    )
    op.create_index(
        "ix_event_triggers_waiting_key",
        "event_triggers",
        ["project_id", "event_key"],
        unique=True,
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )
    op.create_index(
        "ix_event_triggers_key", "event_triggers", ["project_id", "event_key", "requested_at"]
    )
    op.create_index(
        "ix_event_triggers_requested", "event_triggers", ["project_id", "requested_at", "id"]
    )
    op.create_index("ix_event_triggers_expiry", "event_triggers", ["status", "expires_at"])
    op.create_index("ix_event_triggers_ended", "event_triggers", ["status", "ended_at"])
    op.create_index("ix_event_triggers_run", "event_triggers", ["workflow_run_id"])
    op.create_table(
        "buffered_events",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("event_key", sa.String(512), nullable=False),
        sa.Column("payload", JSON_TYPE, nullable=True),
        sa.Column("sent_by", sa.String(120), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "event_key", name="pk_buffered_events"),
    )
    op.create_index("ix_buffered_events_expires_at", "buffered_events", ["expires_at"])
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("event_buffer_secs", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("event_buffer_secs")
    op.drop_index("ix_buffered_events_expires_at", table_name="buffered_events")
    op.drop_table("buffered_events")
    for name in (
        "ix_event_triggers_run",
        "ix_event_triggers_ended",
        "ix_event_triggers_expiry",
        "ix_event_triggers_requested",
        "ix_event_triggers_key",
        "ix_event_triggers_waiting_key",
    ):
        op.drop_index(name, table_name="event_triggers")
    op.drop_table("event_triggers")
