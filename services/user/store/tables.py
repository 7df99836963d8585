"""The user service's tables (the schema the Alembic migrations create)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Index, Integer, MetaData, String, Table

from services.common.before import before_table
from services.common.email import outbox_table

metadata = MetaData()

profiles = Table(
    "user_profiles",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("display_name", String(100), nullable=False),
    Column("avatar_url", String(2048), nullable=True),
    Column("locale", String(35), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("title", String(100), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deactivated_at", DateTime(timezone=True), nullable=True),
    Column("restore_deadline", DateTime(timezone=True), nullable=True),
    # The user_deactivation workflow that deactivated the profile (restore signals it).
    Column("deactivation_operation_id", String(255), nullable=True),
    Column("version", Integer, nullable=False),
    # The workflow that made the last change (a retried change is recognised by it).
    Column("last_operation_id", String(255), nullable=True),
)

memberships = Table(
    "user_memberships",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("tenant_id", String(64), primary_key=True),
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    # Who suspended it (a workflow id): only that operation's restore reactivates it.
    Column("suspended_by", String(255), nullable=True),
    # Projection of the profile for directory search (kept in sync by user_profile_sync).
    Column("email", String(320), nullable=False),
    Column("display_name", String(100), nullable=False),
    Column("name_key", String(100), nullable=False),  # lower-cased display name: order + search
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The operation (user onboarding) that created the row: its compensation removes only that.
    Column("created_by", String(255), nullable=True),
    Index("ix_user_memberships_directory", "tenant_id", "status", "name_key", "user_id"),
)

preferences = Table(
    "user_preferences",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("tenant_id", String(64), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255), nullable=True),
)

activity_log = Table(
    "user_activity_log",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("actor_id", String(64), nullable=True),
    Column("kind", String(50), nullable=False),
    Column("summary", String(300), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_user_activity_log_recent", "tenant_id", "user_id", "at"),
)

# One row per (bulk operation, user): the item's effect is applied in the same transaction
# that inserts it, so a retried or replayed item never applies twice.
bulk_items = Table(
    "user_bulk_items",
    metadata,
    Column("operation_id", String(255), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("changed", Boolean, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

email_outbox = outbox_table(metadata, "user")

# What each operation replaced, and what it undid (services/common/before.py).
operation_before = before_table(metadata, "user")
