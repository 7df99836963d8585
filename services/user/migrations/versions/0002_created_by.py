"""Memberships and preferences remember the operation that created them (user onboarding's
compensation removes only what it created).

Revision ID: user_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "user_0002"
down_revision = "user_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_memberships") as batch:
        batch.add_column(sa.Column("created_by", sa.String(255), nullable=True))
    with op.batch_alter_table("user_preferences") as batch:
        batch.add_column(sa.Column("created_by", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_preferences") as batch:
        batch.drop_column("created_by")
    with op.batch_alter_table("user_memberships") as batch:
        batch.drop_column("created_by")
