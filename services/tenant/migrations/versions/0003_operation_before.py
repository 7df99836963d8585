"""What each operation replaced (services/common/before.py): a retried add_member still
reports the member as its own, so its compensation removes it.

Revision ID: tenant_0003
"""

from __future__ import annotations

from services.common.before import create_before_table

revision = "tenant_0003"
down_revision = "tenant_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_before_table("tenant")


def downgrade() -> None:
    from alembic import op

    op.drop_table("tenant_operation_before")
