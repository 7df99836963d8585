"""What a subject was before an operation first changed it, kept with the change; and the
fence that keeps an undone operation from changing it again.

A forward activity hands its compensation the state it replaced (a permission, a membership,
a session). Every attempt must hand over the same one: an attempt that committed and then
lost its answer (a worker killed, a timeout) is run again, and the new attempt reads the state
its predecessor wrote. Undoing to that would keep the change. So the first attempt records the
state it replaced, keyed by the operation (the workflow id) and the subject, in the same
transaction as the change, and every later attempt of that operation gets the recorded one.

The fence: an attempt can outlive its own timeout (blocked on a lock, a stalled worker) and
commit after the workflow has settled the step with another attempt and compensated it: a
grant, membership or permission would come back after the operation was undone, for a
tenant that may be gone. So a compensation (an activity the step kernel's ``undo`` started)
marks the subject undone for its operation, and a forward write of that operation to that
subject is refused from then on. Both lock the same row first: a forward that is committing
is waited for (and then undone), and one that comes later finds the mark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from contracts.context import in_compensation
from contracts.errors import ErrorKind
from services.common.db import Database, fetch_first, now_utc
from services.common.errors import ServiceError

T = TypeVar("T")


def _columns() -> list[Column[Any]]:
    """The table as its first migration made it (:func:`create_before_table`)."""
    return [
        Column("operation_id", String(255), primary_key=True),
        Column("subject", String(255), primary_key=True),
        # SQL NULL: the subject did not exist before the operation.
        Column("state", JSON(none_as_null=True), nullable=True),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
    ]


def _undone_column() -> Column[Any]:
    # Set by the operation's compensation of the subject (the fence); NULL until then.
    return Column("undone_at", DateTime(timezone=True), nullable=True)


def before_table(metadata: MetaData, prefix: str) -> Table:
    return Table(f"{prefix}_operation_before", metadata, *_columns(), _undone_column())


def current_operation() -> str | None:
    """The operation (workflow) the running activity belongs to; None outside one."""
    if not activity.in_activity():
        return None
    return activity.info().workflow_id


class OperationUndone(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            ErrorKind.CONFLICT, "the operation was undone: its late attempt changes nothing"
        )


class BeforeLog:
    """One service's record of what its operations replaced, and of what they undid."""

    def __init__(self, db: Database, table: Table) -> None:
        self._db = db
        self._table = table

    async def _insert(
        self, session: AsyncSession, operation_id: str, subject: str, state: Any, *, undone: bool
    ) -> bool:
        """The operation's row for ``subject``, unless there is one (True: inserted)."""
        now = now_utc()
        return await self._db.insert_if_absent(
            session,
            self._table,
            operation_id=operation_id,
            subject=subject,
            state=state,
            recorded_at=now,
            undone_at=now if undone else None,
        )

    def _key(self, operation_id: str, subject: str) -> Any:
        return (self._table.c.operation_id == operation_id) & (self._table.c.subject == subject)

    async def fence(self, session: AsyncSession, subject: str) -> None:
        """Call it first in the transaction of every write to ``subject`` that an operation
        makes and undoes. In a compensation: marks ``subject`` undone for the running
        operation (after a forward attempt that is committing, whose change it then sees and
        undoes). In a forward activity: raises :class:`OperationUndone` (not retried) if the
        operation's compensation has undone ``subject``. Outside an activity: nothing."""
        operation_id = current_operation()
        if operation_id is None:
            return
        if in_compensation():
            if not await self._insert(session, operation_id, subject, None, undone=True):
                await session.execute(
                    update(self._table)
                    .where(self._key(operation_id, subject))
                    .values(undone_at=now_utc())
                )
            return
        await self._forward(session, operation_id, subject, None)

    async def _forward(
        self, session: AsyncSession, operation_id: str, subject: str, state: Any
    ) -> tuple[bool, Any]:
        """Records ``state`` unless recorded (True then); refuses an undone subject. Returns
        whether this call recorded it, and the recorded state."""
        if await self._insert(session, operation_id, subject, state, undone=False):
            return True, state
        row = await fetch_first(
            session,
            select(self._table.c.state, self._table.c.undone_at)
            .where(self._key(operation_id, subject))
            .with_for_update(),
        )
        assert row is not None  # the conflict was on this very key
        if row["undone_at"] is not None:
            raise OperationUndone()
        return False, row["state"]

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
        transaction that makes the change, before making it; it fences ``subject`` as
        :meth:`fence` does (a subject is written with one of the two, not both)."""
        operation_id = current_operation()
        if operation_id is None:
            return state
        if in_compensation():
            await self.fence(session, subject)
            return state
        recorded, stored = await self._forward(session, operation_id, subject, dump(state))
        return state if recorded else load(stored)


def create_before_table(prefix: str) -> None:
    """For a service's migration: creates its table as its first version was (a later change
    to it has a migration of its own: :func:`add_undone_column`)."""
    from alembic import op

    op.create_table(f"{prefix}_operation_before", *_columns())


def add_undone_column(prefix: str) -> None:
    """For a service's migration: adds the fence's column (:meth:`BeforeLog.fence`)."""
    from alembic import op

    op.add_column(f"{prefix}_operation_before", _undone_column())
