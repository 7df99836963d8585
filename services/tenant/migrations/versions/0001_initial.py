"""The tenant service's tables: tenants, memberships, roles, quotas, plans, invoices, each
user's current tenant and the switch audit.

Revision ID: tenant_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tenant_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_tenants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_operation", sa.String(255), nullable=True),
        sa.Column("plan_operation", sa.String(255), nullable=True),
        sa.Column("status_operation", sa.String(255), nullable=True),
    )
    op.create_table(
        "tenant_memberships",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("invited_by", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_operation", sa.String(255), nullable=True),
    )
    op.create_index("ix_tenant_memberships_user", "tenant_memberships", ["user_id"])
    op.create_table(
        "tenant_roles",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("permissions", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_operation", sa.String(255), nullable=True),
    )
    op.create_table(
        "tenant_quotas",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("max_users", sa.Integer, nullable=False),
        sa.Column("storage_bytes", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operation_id", sa.String(255), nullable=True),
    )
    op.create_table(
        "tenant_plans",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("price_cents", sa.Integer, nullable=False),
        sa.Column("max_users", sa.Integer, nullable=False),
        sa.Column("storage_bytes", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tenant_invoices",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("previous_plan", sa.String(32), nullable=False),
        sa.Column("amount_cents", sa.Integer, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("operation_id", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tenant_invoices_tenant", "tenant_invoices", ["tenant_id", "created_at"])
    op.create_table(
        "tenant_current",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("operation_id", sa.String(255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tenant_switches",
        sa.Column("operation_id", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("from_tenant_id", sa.String(64), nullable=True),
        sa.Column("to_tenant_id", sa.String(64), nullable=False),
        sa.Column("previous", sa.JSON, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tenant_switches_user", "tenant_switches", ["user_id", "at"])


def downgrade() -> None:
    for table in (
        "tenant_switches",
        "tenant_current",
        "tenant_invoices",
        "tenant_plans",
        "tenant_quotas",
        "tenant_roles",
        "tenant_memberships",
        "tenant_tenants",
    ):
        op.drop_table(table)
