"""Memberships (tenant-owned) with their projection of the profile for directory search."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, update

from contracts.user import MembershipSnapshot, MembershipStatus, UserProfile, UserStatus
from services.common.before import BeforeLog
from services.common.db import Store, fetch_all, fetch_first, fetch_one, rowcount
from services.common.errors import NotFound
from services.user.models import MembershipRow
from services.user.store.profile import to_profile
from services.user.store.tables import memberships, profiles


def to_membership(row: Mapping[Any, Any]) -> MembershipRow:
    return MembershipRow(
        user_id=row["user_id"],
        tenant_id=row["tenant_id"],
        roles=list(row["roles"]),
        status=MembershipStatus(row["status"]),
        suspended_by=row["suspended_by"],
        email=row["email"],
        display_name=row["display_name"],
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# The profile's columns in a membership row joined with it, labelled ``p_<name>``.
_PROFILE_COLUMNS = [c.label(f"p_{c.name}") for c in profiles.c]


def _with_profile(row: Mapping[Any, Any]) -> tuple[MembershipRow, UserProfile]:
    profile_row = {c.name: row[f"p_{c.name}"] for c in profiles.c}
    return to_membership(row), to_profile(profile_row)


class MembershipsMixin(Store):
    # Membership writes an operation makes and undoes are fenced against its late attempts.
    before: BeforeLog

    # Profile projection ---------------------------------------------------------------

    async def sync_projections(self, user_id: str, email: str, display_name: str) -> list[str]:
        """Copies the profile's searchable fields into the user's membership rows (every
        tenant: they all show the same person). Returns the tenants updated."""
        async with self.db.transaction() as session:
            await session.execute(
                update(memberships)
                .where(memberships.c.user_id == user_id)
                .values(
                    email=email,
                    display_name=display_name,
                    name_key=display_name.lower(),
                    updated_at=datetime.now(UTC),
                )
            )
            tenants = (
                await session.execute(
                    select(memberships.c.tenant_id)
                    .where(memberships.c.user_id == user_id)
                    .order_by(memberships.c.tenant_id)
                )
            ).scalars()
            return list(tenants)

    # Memberships ----------------------------------------------------------------------

    async def membership(self, user_id: str, tenant_id: str) -> MembershipRow | None:
        row = await self.db.first(
            select(memberships).where(
                memberships.c.user_id == user_id,
                memberships.c.tenant_id == tenant_id,
            )
        )
        return None if row is None else to_membership(row)

    async def membership_snapshot(self, user_id: str, tenant_id: str) -> MembershipSnapshot | None:
        """The row as stored, for reset_membership to put back."""
        row = await self.db.first(
            select(memberships).where(
                memberships.c.user_id == user_id,
                memberships.c.tenant_id == tenant_id,
            )
        )
        if row is None:
            return None
        return MembershipSnapshot(
            user_id=row["user_id"],
            tenant_id=row["tenant_id"],
            roles=list(row["roles"]),
            status=MembershipStatus(row["status"]),
            suspended_by=row["suspended_by"],
            created_by=row["created_by"],
        )

    async def reset_membership(
        self, user_id: str, tenant_id: str, previous: MembershipSnapshot | None
    ) -> bool:
        """Puts the row back as ``previous`` was (None: removes it); the directory fields
        come from the profile. True if this call changed anything."""
        where = (memberships.c.user_id == user_id, memberships.c.tenant_id == tenant_id)
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            await self.before.fence(session, f"membership:{tenant_id}:{user_id}")
            if previous is None:
                result = await session.execute(memberships.delete().where(*where))
                return rowcount(result) == 1
            values: dict[str, Any] = {
                "roles": previous.roles,
                "status": previous.status.value,
                "suspended_by": previous.suspended_by,
                "created_by": previous.created_by,
            }
            current = await fetch_first(session, select(memberships).where(*where))
            if current is not None and all(current[k] == v for k, v in values.items()):
                return False
            profile = await fetch_first(
                session, select(profiles).where(profiles.c.user_id == user_id)
            )
            if profile is None:
                raise NotFound("user")
            await session.execute(
                self.db.upsert(
                    memberships,
                    {"user_id": user_id, "tenant_id": tenant_id},
                    {**values, "updated_at": now},
                    email=profile["email"],
                    display_name=profile["display_name"],
                    name_key=profile["display_name"].lower(),
                )
            )
        return True

    async def upsert_membership(
        self, user_id: str, tenant_id: str, roles: list[str]
    ) -> MembershipRow:
        """Adds the member (active) or sets their roles; the status is left as it is, so a
        suspended member stays suspended."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            await self.before.fence(session, f"membership:{tenant_id}:{user_id}")
            profile = await fetch_first(
                session, select(profiles).where(profiles.c.user_id == user_id)
            )
            if profile is None:
                raise NotFound("user")
            stmt = self.db.upsert(
                memberships,
                {"user_id": user_id, "tenant_id": tenant_id},
                {"roles": roles, "updated_at": now},
                status=MembershipStatus.ACTIVE.value,
                suspended_by=None,
                email=profile["email"],
                display_name=profile["display_name"],
                name_key=profile["display_name"].lower(),
            )
            await session.execute(stmt)
            row = await fetch_one(
                session,
                select(memberships).where(
                    memberships.c.user_id == user_id,
                    memberships.c.tenant_id == tenant_id,
                ),
            )
        return to_membership(row)

    async def remove_membership(self, user_id: str, tenant_id: str) -> bool:
        """True if this call removed the membership."""
        async with self.db.transaction() as session:
            await self.before.fence(session, f"membership:{tenant_id}:{user_id}")
            result = await session.execute(
                memberships.delete().where(
                    memberships.c.user_id == user_id, memberships.c.tenant_id == tenant_id
                )
            )
        return rowcount(result) == 1

    async def suspend_memberships(
        self, user_id: str, operation_key: str, tenant_id: str | None
    ) -> list[str]:
        """Suspends the user's active memberships (in ``tenant_id``, or all when None) on
        behalf of ``operation_key``; returns every tenant it holds suspended (so a retry
        answers the same)."""
        now = datetime.now(UTC)
        scope = [memberships.c.user_id == user_id]
        if tenant_id is not None:
            scope.append(memberships.c.tenant_id == tenant_id)
        async with self.db.transaction() as session:
            await session.execute(
                update(memberships)
                .where(*scope, memberships.c.status == MembershipStatus.ACTIVE)
                .values(
                    status=MembershipStatus.SUSPENDED.value,
                    suspended_by=operation_key,
                    updated_at=now,
                )
            )
            tenants = (
                await session.execute(
                    select(memberships.c.tenant_id)
                    .where(*scope, memberships.c.suspended_by == operation_key)
                    .order_by(memberships.c.tenant_id)
                )
            ).scalars()
            return list(tenants)

    async def restore_memberships(self, user_id: str, operation_key: str) -> list[str]:
        """Reactivates exactly the memberships ``operation_key`` suspended."""
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            tenants = list(
                (
                    await session.execute(
                        select(memberships.c.tenant_id)
                        .where(
                            memberships.c.user_id == user_id,
                            memberships.c.suspended_by == operation_key,
                        )
                        .order_by(memberships.c.tenant_id)
                    )
                ).scalars()
            )
            await session.execute(
                update(memberships)
                .where(
                    memberships.c.user_id == user_id,
                    memberships.c.suspended_by == operation_key,
                )
                .values(status=MembershipStatus.ACTIVE.value, suspended_by=None, updated_at=now)
            )
        return tenants

    async def search_directory(
        self,
        tenant_id: str,
        search: str,
        *,
        first: int,
        after: tuple[str, str] | None,
    ) -> list[tuple[MembershipRow, UserProfile]]:
        """Active members of the tenant whose display name (or a word of it) or email starts
        with ``search`` (case-insensitive), ordered by name then id; ``first + 1`` rows at
        most so the caller knows whether another page exists."""
        conditions = [
            memberships.c.tenant_id == tenant_id,
            memberships.c.status == MembershipStatus.ACTIVE,
            profiles.c.status == UserStatus.ACTIVE,
        ]
        prefix = search.strip().lower()
        if prefix:
            pattern = _escape_like(prefix)
            conditions.append(
                or_(
                    memberships.c.name_key.like(f"{pattern}%", escape="\\"),
                    memberships.c.name_key.like(f"% {pattern}%", escape="\\"),
                    memberships.c.email.like(f"{pattern}%", escape="\\"),
                )
            )
        if after is not None:
            name_key, user_id = after
            conditions.append(
                or_(
                    memberships.c.name_key > name_key,
                    and_(memberships.c.name_key == name_key, memberships.c.user_id > user_id),
                )
            )
        query = (
            select(memberships, *_PROFILE_COLUMNS)
            .join(profiles, profiles.c.user_id == memberships.c.user_id)
            .where(*conditions)
            .order_by(memberships.c.name_key, memberships.c.user_id)
            .limit(first + 1)
        )
        async with self.db.transaction() as session:
            rows = await fetch_all(session, query)
        return [_with_profile(row) for row in rows]

    async def members_by_ids(
        self, tenant_id: str, user_ids: Sequence[str]
    ) -> list[tuple[MembershipRow, UserProfile]]:
        """The active members of the tenant among ``user_ids``, with their profiles, in one
        query (ordered by id). Anyone else (unknown ids, other tenants' users, suspended
        members) is simply absent: another tenant's user does not exist here."""
        wanted = list(dict.fromkeys(user_ids))
        if not wanted:
            return []
        query = (
            select(memberships, *_PROFILE_COLUMNS)
            .join(profiles, profiles.c.user_id == memberships.c.user_id)
            .where(
                memberships.c.tenant_id == tenant_id,
                memberships.c.status == MembershipStatus.ACTIVE,
                memberships.c.user_id.in_(wanted),
            )
            .order_by(memberships.c.user_id)
        )
        async with self.db.transaction() as session:
            rows = await fetch_all(session, query)
        return [_with_profile(row) for row in rows]

    async def memberships_of(self, user_id: str) -> list[MembershipRow]:
        rows = await self.db.all_rows(
            select(memberships)
            .where(memberships.c.user_id == user_id)
            .order_by(memberships.c.tenant_id)
        )
        return [to_membership(row) for row in rows]
