"""The workflow service's tables: compliance exports and erasure audit records.

Revision ID: workflow_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "workflow_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_exports",
        sa.Column("request_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(300), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_workflow_exports_user_id", "workflow_exports", ["user_id"])
    op.create_table(
        "workflow_erase_audit",
        sa.Column("request_id", sa.String(255), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(300), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("services", sa.JSON, nullable=False),
    )
    op.create_index(
        "ix_workflow_erase_audit_tenant", "workflow_erase_audit", ["tenant_id", "requested_at"]
    )


def downgrade() -> None:
    op.drop_table("workflow_erase_audit")
    op.drop_table("workflow_exports")
