"""User onboarding: the profile, membership and preferences rows an onboarding operation
creates, each marked with the operation so its compensation removes only those."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from contracts.user import MembershipStatus
from services.common.db import Store, fetch_first, rowcount
from services.common.errors import NotFound
from services.user.store.tables import memberships, preferences, profiles


class OnboardingMixin(Store):
    async def delete_created_profile(self, user_id: str, operation_id: str) -> bool:
        """Deletes the profile if ``operation_id`` created it and it is unchanged since, and
        no membership shows it anywhere."""
        async with self.db.transaction() as session:
            result = await session.execute(
                profiles.delete().where(
                    profiles.c.user_id == user_id,
                    profiles.c.last_operation_id == operation_id,
                    profiles.c.version == 1,
                    ~select(memberships.c.user_id).where(memberships.c.user_id == user_id).exists(),
                )
            )
        return rowcount(result) == 1

    async def init_preferences(
        self,
        user_id: str,
        tenant_id: str,
        roles: list[str],
        document: dict[str, Any],
        operation_id: str,
    ) -> dict[str, Any]:
        """The member's directory row and preferences in the tenant, each inserted if absent
        (marked with the operation); returns the preferences as stored."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            profile = await fetch_first(
                session, select(profiles).where(profiles.c.user_id == user_id)
            )
            if profile is None:
                raise NotFound("user")
            await self.db.insert_if_absent(
                session,
                memberships,
                ["user_id", "tenant_id"],
                user_id=user_id,
                tenant_id=tenant_id,
                roles=roles,
                status=MembershipStatus.ACTIVE.value,
                suspended_by=None,
                email=profile["email"],
                display_name=profile["display_name"],
                name_key=profile["display_name"].lower(),
                updated_at=now,
                created_by=operation_id,
            )
            await self.db.insert_if_absent(
                session,
                preferences,
                ["user_id", "tenant_id"],
                user_id=user_id,
                tenant_id=tenant_id,
                document=document,
                updated_at=now,
                created_by=operation_id,
            )
            stored = (
                await session.execute(
                    select(preferences.c.document).where(
                        preferences.c.user_id == user_id, preferences.c.tenant_id == tenant_id
                    )
                )
            ).scalar_one()
        return dict(stored)

    async def discard_preferences(self, user_id: str, tenant_id: str, operation_id: str) -> int:
        """Removes the rows ``operation_id`` created in the tenant; how many."""
        count = 0
        async with self.db.transaction() as session:
            for table in (preferences, memberships):
                result = await session.execute(
                    table.delete().where(
                        table.c.user_id == user_id,
                        table.c.tenant_id == tenant_id,
                        table.c.created_by == operation_id,
                    )
                )
                count += rowcount(result)
        return count
