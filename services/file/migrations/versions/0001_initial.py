"""The file service's tables: files, permissions, tenant quotas and the email outbox.

Revision ID: file_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "file_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_files",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("declared_content_type", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("storage_key", sa.String(512), nullable=False),
        sa.Column("thumbnail_key", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_file_files_tenant_created", "file_files", ["tenant_id", "created_at", "id"])
    op.create_index("ix_file_files_tenant_provider", "file_files", ["tenant_id", "provider", "id"])
    op.create_table(
        "file_permissions",
        sa.Column(
            "file_id",
            sa.String(36),
            sa.ForeignKey("file_files.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("permission", sa.String(16), nullable=False),
        sa.Column("granted_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_file_permissions_tenant_user", "file_permissions", ["tenant_id", "user_id"])
    op.create_table(
        "file_tenant_quotas",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("limit_bytes", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "file_email_outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("file_email_outbox")
    op.drop_table("file_tenant_quotas")
    op.drop_index("ix_file_permissions_tenant_user", table_name="file_permissions")
    op.drop_table("file_permissions")
    op.drop_index("ix_file_files_tenant_provider", table_name="file_files")
    op.drop_index("ix_file_files_tenant_created", table_name="file_files")
    op.drop_table("file_files")
