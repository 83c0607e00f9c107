"""replays and reruns name the run they copy; runs indexed for the monitor's lists

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("origin_run_id", sa.String(64), nullable=True))
    # Counts per status, and lists filtered by one status or one workflow: the equality
    # columns, then the list's whole order, so a page reads its rows off the index in order.
    op.create_index(
        "ix_runs_project_status_created", "runs", ["project_id", "status", "created_at", "id"]
    )
    op.drop_index("ix_runs_workflow_created", table_name="runs")
    op.create_index(
        "ix_runs_project_workflow_created",
        "runs",
        ["project_id", "workflow_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_runs_project_workflow_created", table_name="runs")
    op.create_index("ix_runs_workflow_created", "runs", ["workflow_id", "created_at"])
    op.drop_index("ix_runs_project_status_created", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("origin_run_id")
