"""The activity log (tenant-owned): one entry per change, written once by id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.user import ActivityEntry, ActivityKind
from services.common.db import Database, Store, utc
from services.user.store.tables import activity_log


def to_entry(row: Mapping[Any, Any]) -> ActivityEntry:
    return ActivityEntry(
        id=row["id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        actor_id=row["actor_id"],
        kind=ActivityKind(row["kind"]),
        summary=row["summary"],
        at=utc(row["at"]),
    )


async def add_entry(db: Database, session: AsyncSession, entry: ActivityEntry) -> bool:
    """Writes the entry in ``session`` unless one with its id exists (the other aggregates
    log their changes in the same transaction as the change)."""
    return await db.insert_if_absent(
        session, activity_log, ["id"], **entry.model_dump(mode="python")
    )


class ActivityMixin(Store):
    async def record_activity(self, entry: ActivityEntry) -> bool:
        """Writes the entry once (by id); False if it was already there."""
        async with self.db.transaction() as session:
            return await add_entry(self.db, session, entry)

    async def recent_activity(
        self, tenant_id: str, user_id: str, limit: int
    ) -> list[ActivityEntry]:
        rows = await self.db.all_rows(
            select(activity_log)
            .where(
                activity_log.c.tenant_id == tenant_id,
                activity_log.c.user_id == user_id,
            )
            .order_by(activity_log.c.at.desc(), activity_log.c.id.desc())
            .limit(limit)
        )
        return [to_entry(row) for row in rows]
