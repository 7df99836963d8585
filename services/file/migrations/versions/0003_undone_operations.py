"""The fence of undone operations (services/common/before.py): a late attempt of an undone
operation's forward step changes nothing its compensation undid.

Revision ID: file_0003
"""

from __future__ import annotations

from services.common.before import add_undone_column

revision = "file_0003"
down_revision = "file_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_undone_column("file")


def downgrade() -> None:
    from alembic import op

    op.drop_column("file_operation_before", "undone_at")
