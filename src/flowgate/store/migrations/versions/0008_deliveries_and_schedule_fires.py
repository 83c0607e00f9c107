"""webhook deliveries (the inbox) and schedule fires (one run per due time)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON_TYPE = (
    sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sa.Text(), "sqlite")
)


def upgrade() -> None:
    op.create_table(
        "trigger_deliveries",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("trigger_id", sa.String(80), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.String(2000), nullable=False),
        sa.Column("query", JSON_TYPE, nullable=False),
        sa.Column("headers", JSON_TYPE, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("signature_headers", JSON_TYPE, nullable=True),
        sa.Column("replay_key", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "id", name="pk_trigger_deliveries"),
    )
    op.create_index(
        "ix_trigger_deliveries_project_id_trigger_id_replay_key",
        "trigger_deliveries",
        ["project_id", "trigger_id", "replay_key"],
        unique=True,
    )
    op.create_index(
        "ix_trigger_deliveries_project_id_trigger_id_received_at",
        "trigger_deliveries",
        ["project_id", "trigger_id", "received_at"],
    )
    op.create_index("ix_trigger_deliveries_received_at", "trigger_deliveries", ["received_at"])
    op.create_table(
        "schedule_fires",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("trigger_id", sa.String(80), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "trigger_id", "due_at", name="pk_schedule_fires"),
    )
    op.create_index("ix_triggers_next_run_at", "triggers", ["next_run_at"])


def downgrade() -> None:
    op.drop_index("ix_triggers_next_run_at", table_name="triggers")
    op.drop_table("schedule_fires")
    op.drop_index(
        "ix_trigger_deliveries_project_id_trigger_id_replay_key", table_name="trigger_deliveries"
    )
    op.drop_index("ix_trigger_deliveries_received_at", table_name="trigger_deliveries")
    op.drop_index(
        "ix_trigger_deliveries_project_id_trigger_id_received_at", table_name="trigger_deliveries"
    )
    op.drop_table("trigger_deliveries")
