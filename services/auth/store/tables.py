"""The auth service's tables (the schema the Alembic migrations create). Sessions have a
table too, used when Redis is not configured (see :mod:`services.auth.store.sessions`)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from services.common.before import before_table
from services.common.email import outbox_table

metadata = MetaData()

users = Table(
    "auth_users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False),
    # Lower-cased email: unique, so addresses differing only in case are one account.
    Column("email_lower", String(320), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("email_verified_at", DateTime(timezone=True), nullable=True),
    Column("mfa_enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("email_lower", name="uq_auth_users_email_lower"),
)

sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("refresh_token_hash", String(64), nullable=False),
    Column("user_agent", String(300), nullable=True),
    Column("refreshed_at", DateTime(timezone=True), nullable=True),
    Index("ix_auth_sessions_user_id", "user_id"),
)

tokens = Table(
    "auth_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("workflow_id", String(200), nullable=True),
    Column("subject_id", String(36), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("token_hash", name="uq_auth_tokens_token_hash"),
    Index("ix_auth_tokens_user_id", "user_id"),
)

mfa_secrets = Table(
    "auth_mfa_secrets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("secret_ciphertext", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("workflow_id", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True), nullable=True),
    # The last TOTP time step accepted at login: a code is good once.
    Column("last_used_step", BigInteger, nullable=False),
    Index("ix_auth_mfa_secrets_user_id", "user_id"),
)

recovery_codes = Table(
    "auth_recovery_codes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("user_id", "code_hash", name="uq_auth_recovery_codes_user_code"),
)

tenant_grants = Table(
    "auth_tenant_grants",
    metadata,
    Column("user_id", String(36), ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", String(128), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "tenant_id", name="pk_auth_tenant_grants"),
    Index("ix_auth_tenant_grants_tenant_id", "tenant_id"),
)

email_outbox = outbox_table(metadata, "auth")

# What each operation replaced, and what it undid (services/common/before.py).
operation_before = before_table(metadata, "auth")
