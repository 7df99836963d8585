"""The auth service's tables: users, sessions, one-time tokens, MFA secrets, recovery codes,
tenant access grants and the email outbox.

Revision ID: auth_0001
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "auth_0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _user_id() -> sa.Column[str]:
    return sa.Column(
        "user_id",
        sa.String(36),
        sa.ForeignKey("auth_users.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "auth_users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_lower", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _timestamp("email_verified_at", nullable=True),
        sa.Column("mfa_enabled", sa.Boolean, nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.UniqueConstraint("email_lower", name="uq_auth_users_email_lower"),
    )
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        _user_id(),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("revoked_at", nullable=True),
        sa.Column("refresh_token_hash", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=True),
        _timestamp("refreshed_at", nullable=True),
    )
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"])
    op.create_table(
        "auth_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        _user_id(),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=True),
        sa.Column("subject_id", sa.String(36), nullable=True),
        _timestamp("created_at"),
        _timestamp("expires_at"),
        _timestamp("used_at", nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_auth_tokens_token_hash"),
    )
    op.create_index("ix_auth_tokens_user_id", "auth_tokens", ["user_id"])
    op.create_table(
        "auth_mfa_secrets",
        sa.Column("id", sa.String(36), primary_key=True),
        _user_id(),
        sa.Column("secret_ciphertext", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=True),
        _timestamp("created_at"),
        _timestamp("confirmed_at", nullable=True),
        sa.Column("last_used_step", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_auth_mfa_secrets_user_id", "auth_mfa_secrets", ["user_id"])
    op.create_table(
        "auth_recovery_codes",
        sa.Column("id", sa.String(36), primary_key=True),
        _user_id(),
        sa.Column("code_hash", sa.String(64), nullable=False),
        _timestamp("created_at"),
        _timestamp("used_at", nullable=True),
        sa.UniqueConstraint("user_id", "code_hash", name="uq_auth_recovery_codes_user_code"),
    )
    op.create_table(
        "auth_tenant_grants",
        _user_id(),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("user_id", "tenant_id", name="pk_auth_tenant_grants"),
    )
    op.create_index("ix_auth_tenant_grants_tenant_id", "auth_tenant_grants", ["tenant_id"])
    op.create_table(
        "auth_email_outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        _timestamp("created_at"),
        _timestamp("sent_at", nullable=True),
    )


def downgrade() -> None:
    op.drop_table("auth_email_outbox")
    op.drop_index("ix_auth_tenant_grants_tenant_id", table_name="auth_tenant_grants")
    op.drop_table("auth_tenant_grants")
    op.drop_table("auth_recovery_codes")
    op.drop_index("ix_auth_mfa_secrets_user_id", table_name="auth_mfa_secrets")
    op.drop_table("auth_mfa_secrets")
    op.drop_index("ix_auth_tokens_user_id", table_name="auth_tokens")
    op.drop_table("auth_tokens")
    op.drop_index("ix_auth_sessions_user_id", table_name="auth_sessions")
    op.drop_table("auth_sessions")
    op.drop_table("auth_users")
