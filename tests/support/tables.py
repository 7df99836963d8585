"""Which tables hold what the system stores, for tests that compare snapshots of them."""

from __future__ import annotations


def holds_state(table: str) -> bool:
    """Not migration bookkeeping, nor the record of what each operation replaced
    (services/common/before.py): a compensated operation leaves that record behind."""
    return "alembic" not in table and not table.endswith("_operation_before")
