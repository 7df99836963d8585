"""The user service's tables: profiles, memberships projection, preferences, activity log,
bulk items and the email outbox.

Revision ID: user_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "user_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_profiles",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("avatar_url", sa.String(2048), nullable=True),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("title", sa.String(100), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restore_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deactivation_operation_id", sa.String(255), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_operation_id", sa.String(255), nullable=True),
    )
    op.create_table(
        "user_memberships",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("suspended_by", sa.String(255), nullable=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_user_memberships_directory",
        "user_memberships",
        ["tenant_id", "status", "name_key", "user_id"],
    )
    op.create_table(
        "user_preferences",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "user_activity_log",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("summary", sa.String(300), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_user_activity_log_recent", "user_activity_log", ["tenant_id", "user_id", "at"]
    )
    op.create_table(
        "user_bulk_items",
        sa.Column("operation_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("changed", sa.Boolean, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "user_email_outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("user_email_outbox")
    op.drop_table("user_bulk_items")
    op.drop_index("ix_user_activity_log_recent", table_name="user_activity_log")
    op.drop_table("user_activity_log")
    op.drop_table("user_preferences")
    op.drop_index("ix_user_memberships_directory", table_name="user_memberships")
    op.drop_table("user_memberships")
    op.drop_table("user_profiles")
