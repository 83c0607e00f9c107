"""triggers

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON_TYPE = (
    sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sa.Text(), "sqlite")
)


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(80), nullable=False),
        sa.Column("workflow_id", sa.String(80), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("config", JSON_TYPE, nullable=False),
        sa.Column("token", sa.String(64), nullable=True),
        sa.Column("signing_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("next_run_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id", "workflow_id"],
            ["workflows.project_id", "workflows.id"],
            name="fk_triggers_project_id_workflows",
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name="pk_triggers"),
        sa.UniqueConstraint("token", name="uq_triggers_token"),
    )
    op.create_index("ix_triggers_project_id_workflow_id", "triggers", ["project_id", "workflow_id"])


def downgrade() -> None:
    op.drop_index("ix_triggers_project_id_workflow_id", table_name="triggers")
    op.drop_table("triggers")
