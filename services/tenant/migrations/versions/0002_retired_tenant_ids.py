"""Tenant ids are never handed to another user: a deleted (compensated) tenant's id stays
retired, with the user who made it, so nothing left under that id (a grant, a projection)
can pass to someone else.

Revision ID: tenant_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tenant_0002"
down_revision = "tenant_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_retired_ids",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("operation_id", sa.String(255), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenant_retired_ids")
