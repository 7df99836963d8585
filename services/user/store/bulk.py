"""Bulk operations: each item applied exactly once, claimed by a row of ``user_bulk_items``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.errors import ErrorKind
from contracts.user import (
    ActivityEntry,
    ActivityKind,
    BulkAction,
    BulkItemApplied,
    BulkItemInput,
    MembershipStatus,
    UserStatus,
)
from services.common.db import Store, fetch_first, rowcount
from services.common.errors import NotFound, ServiceError
from services.user.store.activity import add_entry
from services.user.store.tables import bulk_items, memberships, profiles


class BulkMixin(Store):
    async def apply_bulk_item(self, item: BulkItemInput, actor_id: str) -> BulkItemApplied:
        """Applies one item of a bulk operation exactly once: the claim row, the change and
        its activity entry commit together; a repeat returns the recorded outcome. An item
        that cannot be applied raises (and leaves nothing behind)."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            claimed = await self.db.insert_if_absent(
                session,
                bulk_items,
                ["operation_id", "user_id"],
                operation_id=item.operation_id,
                user_id=item.user_id,
                tenant_id=item.tenant_id,
                action=item.action.value,
                changed=False,
                applied_at=now,
            )
            if not claimed:
                changed = (
                    await session.execute(
                        select(bulk_items.c.changed).where(
                            bulk_items.c.operation_id == item.operation_id,
                            bulk_items.c.user_id == item.user_id,
                            bulk_items.c.tenant_id == item.tenant_id,
                        )
                    )
                ).scalar_one()
                return BulkItemApplied(user_id=item.user_id, changed=bool(changed))
            row = await fetch_first(
                session,
                select(memberships, profiles.c.status.label("profile_status"))
                .join(profiles, profiles.c.user_id == memberships.c.user_id)
                .where(
                    memberships.c.user_id == item.user_id,
                    memberships.c.tenant_id == item.tenant_id,
                ),
            )
            if row is None:
                raise NotFound("user")
            kind, summary, changed = await self._apply_action(session, item, row, actor_id, now)
            if changed:
                await add_entry(
                    self.db,
                    session,
                    ActivityEntry(
                        id=f"{item.operation_id}:{item.user_id}",
                        tenant_id=item.tenant_id,
                        user_id=item.user_id,
                        actor_id=actor_id,
                        kind=kind,
                        summary=summary,
                        at=now,
                    ),
                )
                await session.execute(
                    update(bulk_items)
                    .where(
                        bulk_items.c.operation_id == item.operation_id,
                        bulk_items.c.user_id == item.user_id,
                    )
                    .values(changed=True)
                )
        return BulkItemApplied(user_id=item.user_id, changed=changed)

    async def _apply_action(
        self,
        session: AsyncSession,
        item: BulkItemInput,
        row: Mapping[Any, Any],
        actor_id: str,
        now: datetime,
    ) -> tuple[ActivityKind, str, bool]:
        in_tenant = and_(
            memberships.c.user_id == item.user_id, memberships.c.tenant_id == item.tenant_id
        )
        if item.action is BulkAction.SUSPEND:
            if item.user_id == actor_id:
                raise ServiceError(ErrorKind.CONFLICT, "you cannot suspend yourself")
            if row["status"] == MembershipStatus.SUSPENDED:
                return ActivityKind.MEMBERSHIP_SUSPENDED, "", False
            await session.execute(
                update(memberships)
                .where(in_tenant)
                .values(
                    status=MembershipStatus.SUSPENDED.value,
                    suspended_by=item.operation_id,
                    updated_at=now,
                )
            )
            return ActivityKind.MEMBERSHIP_SUSPENDED, "membership suspended (bulk)", True
        if item.action is BulkAction.RESTORE:
            if row["profile_status"] == UserStatus.DEACTIVATED:
                raise ServiceError(ErrorKind.CONFLICT, "the user is deactivated")
            if row["status"] == MembershipStatus.ACTIVE:
                return ActivityKind.MEMBERSHIP_RESTORED, "", False
            await session.execute(
                update(memberships)
                .where(in_tenant)
                .values(status=MembershipStatus.ACTIVE.value, suspended_by=None, updated_at=now)
            )
            return ActivityKind.MEMBERSHIP_RESTORED, "membership restored (bulk)", True
        # update_locale
        assert item.locale is not None
        result = await session.execute(
            update(profiles)
            .where(profiles.c.user_id == item.user_id, profiles.c.locale != item.locale)
            .values(
                locale=item.locale,
                updated_at=now,
                version=profiles.c.version + 1,
                last_operation_id=item.operation_id,
            )
        )
        changed = rowcount(result) == 1
        return ActivityKind.LOCALE_CHANGED, f"locale set to {item.locale} (bulk)", changed
