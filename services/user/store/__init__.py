"""The user service's tables and every query on them.

Profiles are global (one per user); a profile is visible in a tenant only through an active
membership there. Memberships, preferences, the activity log and bulk items are tenant-owned:
every query on them filters by tenant, except the two cross-tenant effects a user's own
account has by design (the profile projection sync and the deactivation, both keyed by user).

SQLite note: the driver opens a transaction at the first write, so operations that check and
then change start with their write (insert-if-absent of a claim, or a guarded UPDATE whose
row count says what happened) to stay atomic there too.

One module per aggregate: ``tables`` (the schema), ``profile``, ``membership`` (with the
profile projection), ``preference``, ``activity`` (the log), ``bulk`` (bulk operations),
``onboarding`` (user onboarding's rows) and ``subjects`` (data-subject requests);
:class:`UserStore` is made of their parts. (Module names are singular so that none shadows a
table this package exports, e.g. ``memberships``.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, select

from contracts.user import MembershipStatus, UserStatus
from services.common.before import BeforeLog
from services.common.db import Database
from services.user.store.activity import ActivityMixin
from services.user.store.bulk import BulkMixin
from services.user.store.membership import MembershipsMixin
from services.user.store.onboarding import OnboardingMixin
from services.user.store.preference import PreferencesMixin
from services.user.store.profile import ProfilesMixin
from services.user.store.subjects import SubjectsMixin
from services.user.store.tables import (
    activity_log,
    bulk_items,
    email_outbox,
    memberships,
    metadata,
    operation_before,
    preferences,
    profiles,
)

__all__ = [
    "UserStore",
    "activity_log",
    "bulk_items",
    "email_outbox",
    "memberships",
    "metadata",
    "preferences",
    "profiles",
]


class UserStore(
    ProfilesMixin,
    MembershipsMixin,
    PreferencesMixin,
    ActivityMixin,
    BulkMixin,
    OnboardingMixin,
    SubjectsMixin,
):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.before = BeforeLog(db, operation_before)

    # Development seed -----------------------------------------------------------------

    async def seed_member(
        self, user_id: str, email: str, display_name: str, tenant_id: str, roles: list[str]
    ) -> None:
        """Idempotent: creates what is missing, changes nothing that exists."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            await self.db.insert_if_absent(
                session,
                profiles,
                ["user_id"],
                user_id=user_id,
                email=email,
                display_name=display_name,
                locale="en",
                timezone="UTC",
                status=UserStatus.ACTIVE.value,
                created_at=now,
                updated_at=now,
                version=1,
            )
            await self.db.insert_if_absent(
                session,
                memberships,
                ["user_id", "tenant_id"],
                user_id=user_id,
                tenant_id=tenant_id,
                roles=roles,
                status=MembershipStatus.ACTIVE.value,
                email=email,
                display_name=display_name,
                name_key=display_name.lower(),
                updated_at=now,
            )

    async def count(self, table: Table, **where: Any) -> int:
        """Rows of ``table`` matching the equalities (tests and diagnostics)."""
        query = select(func.count()).select_from(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        async with self.db.transaction() as session:
            return int((await session.execute(query)).scalar_one())
