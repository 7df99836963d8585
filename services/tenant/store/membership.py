"""Memberships: who is in a tenant with which roles (a tenant always keeps an active owner)."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.errors import ErrorKind
from contracts.tenant import MembershipChange, MemberSnapshot, MemberStatus, TenantMember
from services.common.before import BeforeLog
from services.common.db import Store, fetch_first, fetch_one, now_utc, rowcount
from services.common.errors import NotFound, ServiceError
from services.tenant.store.guard import lock_existing_tenant
from services.tenant.store.rows import aware, to_member
from services.tenant.store.tables import memberships


class MembershipsMixin(Store):
    before: BeforeLog

    async def add_member(
        self,
        tenant_id: str,
        user_id: str,
        member_roles: list[str],
        invited_by: str | None,
        operation_id: str | None,
    ) -> tuple[TenantMember, bool]:
        """Adds the member unless present (an existing member is left as is). ``created``:
        the member was not there before the running operation first added it (a retried
        attempt that finds its own row still says so, and its compensation removes it)."""
        async with self.db.transaction() as session:
            await lock_existing_tenant(session, tenant_id)
            inserted = await self.db.insert_if_absent(
                session,
                memberships,
                ["tenant_id", "user_id"],
                tenant_id=tenant_id,
                user_id=user_id,
                roles=member_roles,
                status=MemberStatus.ACTIVE.value,
                invited_by=invited_by,
                created_at=now_utc(),
                created_by_operation=operation_id,
            )
            existed = await self.before.first(
                session, f"membership:{tenant_id}:{user_id}", not inserted
            )
            row = await fetch_one(
                session,
                select(memberships).where(
                    memberships.c.tenant_id == tenant_id,
                    memberships.c.user_id == user_id,
                ),
            )
        return to_member(row), not existed

    async def remove_member(
        self, tenant_id: str, user_id: str, operation_id: str | None = None
    ) -> bool:
        """Removes the membership; with ``operation_id`` only if that operation created it
        (a compensation never removes a membership that existed before)."""
        query = delete(memberships).where(
            memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id
        )
        if operation_id is not None:
            query = query.where(memberships.c.created_by_operation == operation_id)
        async with self.db.transaction() as session:
            await self.before.fence(session, f"membership:{tenant_id}:{user_id}")
            result = await session.execute(query)
        return rowcount(result) == 1

    async def member(self, tenant_id: str, user_id: str) -> TenantMember | None:
        row = await self.db.first(
            select(memberships).where(
                memberships.c.tenant_id == tenant_id,
                memberships.c.user_id == user_id,
            )
        )
        return None if row is None else to_member(row)

    async def members(self, tenant_id: str) -> list[TenantMember]:
        rows = await self.db.all_rows(
            select(memberships)
            .where(memberships.c.tenant_id == tenant_id)
            .order_by(memberships.c.created_at, memberships.c.user_id)
        )
        return [to_member(row) for row in rows]

    async def member_count(self, tenant_id: str) -> int:
        async with self.db.transaction() as session:
            value = (
                await session.execute(
                    select(func.count())
                    .select_from(memberships)
                    .where(
                        memberships.c.tenant_id == tenant_id,
                        memberships.c.status == MemberStatus.ACTIVE.value,
                    )
                )
            ).scalar_one()
        return int(value)

    async def set_member_roles(
        self, tenant_id: str, user_id: str, member_roles: list[str]
    ) -> TenantMember:
        """Changes a member's roles; the last owner keeps the owner role (checked in the
        same transaction as the change)."""
        async with self.db.transaction() as session:
            row = await fetch_first(
                session,
                select(memberships)
                .where(
                    memberships.c.tenant_id == tenant_id,
                    memberships.c.user_id == user_id,
                )
                .with_for_update(),
            )
            if row is None:
                raise NotFound("member")
            if "owner" in row["roles"] and "owner" not in member_roles:
                await self._keep_an_owner(session, tenant_id, user_id)
            await session.execute(
                update(memberships)
                .where(memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id)
                .values(roles=member_roles)
            )
        found = await self.member(tenant_id, user_id)
        assert found is not None
        return found

    async def _keep_an_owner(self, session: AsyncSession, tenant_id: str, user_id: str) -> None:
        rows = (
            await session.execute(
                select(memberships.c.user_id, memberships.c.roles).where(
                    memberships.c.tenant_id == tenant_id,
                    memberships.c.status == MemberStatus.ACTIVE.value,
                    memberships.c.user_id != user_id,
                )
            )
        ).all()
        if not any("owner" in list(member_roles) for _user, member_roles in rows):
            raise ServiceError(ErrorKind.CONFLICT, "the last owner cannot be demoted or removed")

    async def remove_member_keeping_owner(self, tenant_id: str, user_id: str) -> TenantMember:
        async with self.db.transaction() as session:
            row = await fetch_first(
                session,
                select(memberships).where(
                    memberships.c.tenant_id == tenant_id,
                    memberships.c.user_id == user_id,
                ),
            )
            if row is None:
                raise NotFound("member")
            if "owner" in row["roles"]:
                await self._keep_an_owner(session, tenant_id, user_id)
            await session.execute(
                delete(memberships).where(
                    memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id
                )
            )
        return to_member(row)

    async def would_leave_no_owner(
        self, tenant_id: str, user_id: str, member_roles: list[str] | None
    ) -> bool:
        """True if setting the member's roles to ``member_roles`` (None: removing them)
        would leave the tenant without an active owner (checked again by the change)."""
        member = await self.member(tenant_id, user_id)
        if member is None or "owner" not in member.roles:
            return False
        if member_roles is not None and "owner" in member_roles:
            return False
        async with self.db.transaction() as session:
            try:
                await self._keep_an_owner(session, tenant_id, user_id)
            except ServiceError:
                return True
        return False

    async def member_snapshot(self, tenant_id: str, user_id: str) -> MemberSnapshot | None:
        """The membership row as stored (what restore_membership puts back)."""
        row = await self.db.first(
            select(memberships).where(
                memberships.c.tenant_id == tenant_id,
                memberships.c.user_id == user_id,
            )
        )
        if row is None:
            return None
        return MemberSnapshot(
            tenant_id=row["tenant_id"],
            user_id=row["user_id"],
            roles=list(row["roles"]),
            status=MemberStatus(row["status"]),
            invited_by=row["invited_by"],
            created_at=aware(row["created_at"]) or now_utc(),
            created_by_operation=row["created_by_operation"],
        )

    async def change_membership(
        self,
        tenant_id: str,
        user_id: str,
        change: MembershipChange,
        member_roles: list[str],
        invited_by: str | None,
        operation_id: str,
    ) -> tuple[TenantMember | None, bool]:
        """One change on behalf of ``operation_id``, with the last-owner rule checked in the
        same transaction. Returns the membership after it (None: removed) and whether this
        call changed anything (False: a retry found its change made)."""
        where = (memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id)
        async with self.db.transaction() as session:
            row = await fetch_first(session, select(memberships).where(*where).with_for_update())
            if change is MembershipChange.ADD:
                if row is not None:
                    if row["created_by_operation"] == operation_id:
                        return to_member(row), False
                    raise ServiceError(
                        ErrorKind.CONFLICT, "already a member", fields={"user_id": "member"}
                    )
                await lock_existing_tenant(session, tenant_id)
                await session.execute(
                    memberships.insert().values(
                        tenant_id=tenant_id,
                        user_id=user_id,
                        roles=member_roles,
                        status=MemberStatus.ACTIVE.value,
                        invited_by=invited_by,
                        created_at=now_utc(),
                        created_by_operation=operation_id,
                    )
                )
            elif change is MembershipChange.SET_ROLES:
                if row is None:
                    raise NotFound("member")
                if list(row["roles"]) == member_roles:
                    return to_member(row), False
                if "owner" in row["roles"] and "owner" not in member_roles:
                    await self._keep_an_owner(session, tenant_id, user_id)
                await session.execute(update(memberships).where(*where).values(roles=member_roles))
            else:
                if row is None:
                    return None, False
                if "owner" in row["roles"]:
                    await self._keep_an_owner(session, tenant_id, user_id)
                await session.execute(delete(memberships).where(*where))
                return None, True
            found = await fetch_one(session, select(memberships).where(*where))
        return to_member(found), True

    async def restore_membership(
        self, tenant_id: str, user_id: str, operation_id: str, previous: MemberSnapshot | None
    ) -> bool:
        """Compensation of change_membership: the row as ``previous`` was; with None, the row
        is removed only if ``operation_id`` created it. True if this call changed anything."""
        where = (memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id)
        async with self.db.transaction() as session:
            if previous is None:
                result = await session.execute(
                    delete(memberships).where(
                        *where, memberships.c.created_by_operation == operation_id
                    )
                )
                return rowcount(result) == 1
            values = {
                "roles": previous.roles,
                "status": previous.status.value,
                "invited_by": previous.invited_by,
                "created_at": previous.created_at,
                "created_by_operation": previous.created_by_operation,
            }
            current = await fetch_first(session, select(memberships).where(*where))
            if current is not None and all(
                aware(current[key]) == value if key == "created_at" else current[key] == value
                for key, value in values.items()
            ):
                return False
            await session.execute(
                self.db.upsert(memberships, {"tenant_id": tenant_id, "user_id": user_id}, values)
            )
        return True
