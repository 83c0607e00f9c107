"""workflow and connection ids unique per project

Revision ID: 0005
Revises: 0004

The order matters on SQLite, where a batch operation rebuilds a table: the versions table stops
referring to ``workflows`` before ``workflows`` is rebuilt, and refers to it again afterwards.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_versions") as batch:
        batch.drop_constraint("fk_workflow_versions_workflow_id_workflows", type_="foreignkey")
        batch.add_column(sa.Column("project_id", sa.String(64), nullable=True))
    op.execute(
        "UPDATE workflow_versions SET project_id = (SELECT w.project_id FROM workflows w"
        " WHERE w.id = workflow_versions.workflow_id)"
    )
    with op.batch_alter_table("workflows") as batch:
        batch.drop_constraint("pk_workflows", type_="primary")
        batch.create_primary_key("pk_workflows", ["project_id", "id"])
    with op.batch_alter_table("workflow_versions") as batch:
        batch.alter_column("project_id", existing_type=sa.String(64), nullable=False)
        batch.drop_constraint("pk_workflow_versions", type_="primary")
        batch.create_primary_key("pk_workflow_versions", ["project_id", "workflow_id", "version"])
        batch.create_foreign_key(
            "fk_workflow_versions_project_id_workflows",
            "workflows",
            ["project_id", "workflow_id"],
            ["project_id", "id"],
        )
    with op.batch_alter_table("connections") as batch:
        batch.drop_constraint("pk_connections", type_="primary")
        batch.create_primary_key("pk_connections", ["project_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_constraint("pk_connections", type_="primary")
        batch.create_primary_key("pk_connections", ["id"])
    with op.batch_alter_table("workflow_versions") as batch:
        batch.drop_constraint("fk_workflow_versions_project_id_workflows", type_="foreignkey")
        batch.drop_constraint("pk_workflow_versions", type_="primary")
        batch.create_primary_key("pk_workflow_versions", ["workflow_id", "version"])
    with op.batch_alter_table("workflows") as batch:
        batch.drop_constraint("pk_workflows", type_="primary")
        batch.create_primary_key("pk_workflows", ["id"])
    with op.batch_alter_table("workflow_versions") as batch:
        batch.drop_column("project_id")
        batch.create_foreign_key(
            "fk_workflow_versions_workflow_id_workflows", "workflows", ["workflow_id"], ["id"]
        )
