"""partial index of the runs a worker may claim

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CLAIMABLE = sa.text("status IN ('pending', 'waiting', 'running')")


def upgrade() -> None:
    op.create_index(
        "ix_runs_claimable",
        "runs",
        ["priority", "created_at"],
        postgresql_where=CLAIMABLE,
        sqlite_where=CLAIMABLE,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_claimable", table_name="runs")
