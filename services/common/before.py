"""What a subject was before an operation first changed it, kept with the change.

A forward activity hands its compensation the state it replaced (a permission, a membership,
a session). Every attempt must hand over the same one: an attempt that committed and then
lost its answer (a worker killed, a timeout) is run again, and the new attempt reads the state
its predecessor wrote. Undoing to that would keep the change. So the first attempt records the
state it replaced, keyed by the operation (the workflow id) and the subject, in the same
transaction as the change, and every later attempt of that operation gets the recorded one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from services.common.db import Database, fetch_first, now_utc

T = TypeVar("T")


def _columns() -> list[Column[Any]]:
    return [
        Column("operation_id", String(255), primary_key=True),
        Column("subject", String(255), primary_key=True),
        # SQL NULL: the subject did not exist before the operation.
        Column("state", JSON(none_as_null=True), nullable=True),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
    ]


def before_table(metadata: MetaData, prefix: str) -> Table:
    return Table(f"{prefix}_operation_before", metadata, *_columns())


def current_operation() -> str | None:
    """The operation (workflow) the running activity belongs to; None outside one."""
    if not activity.in_activity():
        return None
    return activity.info().workflow_id


class BeforeLog:
    """One service's record of what its operations replaced."""

    def __init__(self, db: Database, table: Table) -> None:
        self._db = db
        self._table = table

    async def first(
        self,
        session: AsyncSession,
        subject: str,
        state: T,
        *,
        dump: Callable[[T], Any] = lambda value: value,
        load: Callable[[Any], T] = lambda value: value,
    ) -> T:
        """``state`` (what ``subject`` is now, before this attempt's change) the first time
        the running operation changes ``subject``; what that first time recorded on every
        later attempt. Outside an activity (no operation): ``state``. Call it in the
        transaction that makes the change, before making it."""
        operation_id = current_operation()
        if operation_id is None:
            return state
        recorded = await self._db.insert_if_absent(
            session,
            self._table,
            operation_id=operation_id,
            subject=subject,
            state=dump(state),
            recorded_at=now_utc(),
        )
        if recorded:
            return state
        row = await fetch_first(
            session,
            select(self._table.c.state).where(
                self._table.c.operation_id == operation_id, self._table.c.subject == subject
            ),
        )
        assert row is not None  # the conflict was on this very key
        return load(row["state"])


def create_before_table(prefix: str) -> None:
    """For a service's migration: creates its table as :func:`before_table` declares it (the
    one definition; a later change to it needs a migration of its own)."""
    from alembic import op

    op.create_table(f"{prefix}_operation_before", *_columns())
