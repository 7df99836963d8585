"""What each operation replaced, and the fence of undone operations (services/common/
before.py): a late attempt of an undone operation's forward step changes nothing its
compensation undid.

Revision ID: user_0003
"""

from __future__ import annotations

from services.common.before import add_undone_column, create_before_table

revision = "user_0003"
down_revision = "user_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_before_table("user")
    add_undone_column("user")


def downgrade() -> None:
    from alembic import op

    op.drop_table("user_operation_before")
