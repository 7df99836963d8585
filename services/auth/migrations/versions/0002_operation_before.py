"""What each operation replaced, and the fence of undone operations (services/common/
before.py): a late attempt of an undone operation's forward step changes nothing its
compensation undid.

Revision ID: auth_0002
"""

from __future__ import annotations

from services.common.before import add_undone_column, create_before_table

revision = "auth_0002"
down_revision = "auth_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_before_table("auth")
    add_undone_column("auth")


def downgrade() -> None:
    from alembic import op

    op.drop_table("auth_operation_before")
