"""The tenant service's tables (the schema the Alembic migrations create)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table

from services.common.before import before_table

metadata = MetaData()

tenants = Table(
    "tenant_tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("plan", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The provisioning workflow that created it (None: seeded).
    Column("created_by_operation", String(255), nullable=True),
    # The workflow that last changed the plan / the status (compensations check it).
    Column("plan_operation", String(255), nullable=True),
    Column("status_operation", String(255), nullable=True),
)

memberships = Table(
    "tenant_memberships",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("invited_by", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by_operation", String(255), nullable=True),
    Index("ix_tenant_memberships_user", "user_id"),
)

roles = Table(
    "tenant_roles",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("name", String(50), primary_key=True),
    Column("permissions", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by_operation", String(255), nullable=True),
)

quotas = Table(
    "tenant_quotas",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("max_users", Integer, nullable=False),
    Column("storage_bytes", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("operation_id", String(255), nullable=True),
)

plans = Table(
    "tenant_plans",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("price_cents", Integer, nullable=False),
    Column("max_users", Integer, nullable=False),
    Column("storage_bytes", BigInteger, nullable=False),
)

invoices = Table(
    "tenant_invoices",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("plan", String(32), nullable=False),
    Column("previous_plan", String(32), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("operation_id", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("paid_at", DateTime(timezone=True), nullable=True),
    Index("ix_tenant_invoices_tenant", "tenant_id", "created_at"),
)

# Each user's current tenant (what tenant_switching updates).
current_tenants = Table(
    "tenant_current",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("operation_id", String(255), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Ids of tenants deleted by a compensation, with who made them: such an id is never given to
# another user, so nothing left under it (another service's grant) passes to them.
retired_ids = Table(
    "tenant_retired_ids",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("created_by", String(64), nullable=False),
    Column("operation_id", String(255), nullable=False),
    Column("retired_at", DateTime(timezone=True), nullable=False),
)

# The switch audit: one row per switch, with the current-tenant row it replaced (its
# compensation puts that row back and removes the audit row).
switches = Table(
    "tenant_switches",
    metadata,
    Column("operation_id", String(255), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("from_tenant_id", String(64), nullable=True),
    Column("to_tenant_id", String(64), nullable=False),
    Column("previous", JSON, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_tenant_switches_user", "user_id", "at"),
)

# What each operation replaced, and what it undid (services/common/before.py).
operation_before = before_table(metadata, "tenant")
