"""What each operation replaced (services/common/before.py): a retried grant hands its
compensation what the grantee had before the operation, not what its first attempt wrote.

Revision ID: file_0002
"""

from __future__ import annotations

from services.common.before import create_before_table

revision = "file_0002"
down_revision = "file_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_before_table("file")


def downgrade() -> None:
    from alembic import op

    op.drop_table("file_operation_before")
