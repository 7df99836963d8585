"""The fence of undone operations (services/common/before.py): a late attempt of an undone
operation's forward step changes nothing its compensation undid.

Revision ID: tenant_0004
"""

from __future__ import annotations

from services.common.before import add_undone_column

revision = "tenant_0004"
down_revision = "tenant_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_undone_column("tenant")


def downgrade() -> None:
    from alembic import op

    op.drop_column("tenant_operation_before", "undone_at")
