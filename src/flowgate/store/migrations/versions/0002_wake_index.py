"""index waiting runs by wake-up time

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_wake", "runs", ["status", "wake_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_wake", table_name="runs")
