"""uploaded files: file parts of multipart webhook calls

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploaded_files",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("trigger_id", sa.String(80), nullable=False),
        sa.Column("filename", sa.String(1000), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "id", name="pk_uploaded_files"),
    )
    op.create_index("ix_uploaded_files_created_at", "uploaded_files", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_uploaded_files_created_at", table_name="uploaded_files")
    op.drop_table("uploaded_files")
