"""dialects: per-step env overlays on runs; the inbox keeps dialect calls beside webhooks

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = (
    sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sa.Text(), "sqlite")
)

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("step_env", JSON_TYPE, nullable=True))
    with op.batch_alter_table("trigger_deliveries") as batch:
        batch.add_column(sa.Column("workflow_id", sa.String(80), nullable=True))
        batch.add_column(sa.Column("source", sa.String(16), nullable=True))
        batch.add_column(sa.Column("run_start", JSON_TYPE, nullable=True))
    op.create_index(
        "ix_trigger_deliveries_project_id_workflow_id_received_at",
        "trigger_deliveries",
        ["project_id", "workflow_id", "received_at"],
    )
    # Webhook deliveries from before this revision: their workflow is their trigger's.
    op.execute(
        "UPDATE trigger_deliveries SET source = 'webhook', workflow_id = ("
        "SELECT triggers.workflow_id FROM triggers"
        " WHERE triggers.project_id = trigger_deliveries.project_id"
        " AND triggers.id = trigger_deliveries.trigger_id)"
    )


def downgrade() -> None:
    op.drop_index(
        "ix_trigger_deliveries_project_id_workflow_id_received_at",
        table_name="trigger_deliveries",
    )
    with op.batch_alter_table("trigger_deliveries") as batch:
        batch.drop_column("run_start")
        batch.drop_column("source")
        batch.drop_column("workflow_id")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("step_env")
