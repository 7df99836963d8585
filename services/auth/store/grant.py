"""Tenant access grants: which tenants a user may act in, with which roles (the tenant
service's memberships, followed through workflows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import RowMapping

from contracts.auth import GrantStatus
from contracts.errors import ErrorKind
from services.auth.models import GrantRow
from services.auth.store.tables import tenant_grants, users
from services.common.before import BeforeLog
from services.common.db import Store, fetch_all, fetch_first, fetch_value, rowcount
from services.common.errors import ServiceError


def _grant(row: RowMapping) -> GrantRow:
    return GrantRow.model_validate(dict(row))


class GrantsMixin(Store):
    # Grant writes an operation makes and undoes are fenced against its late attempts.
    before: BeforeLog

    async def upsert_grant(
        self,
        user_id: str,
        tenant_id: str,
        roles: Sequence[str],
        status: GrantStatus,
        now: datetime,
    ) -> GrantRow:
        roles = sorted(set(roles), key=list(roles).index)
        async with self.db.transaction() as session:
            await self.before.fence(session, f"grant:{tenant_id}:{user_id}")
            exists = await fetch_value(session, select(users.c.id).where(users.c.id == user_id))
            if exists is None:
                raise ServiceError(ErrorKind.NOT_FOUND, "user not found")
            await self.db.insert_if_absent(
                session,
                tenant_grants,
                user_id=user_id,
                tenant_id=tenant_id,
                roles=roles,
                status=status.value,
                created_at=now,
                updated_at=now,
            )
            await session.execute(
                update(tenant_grants)
                .where(tenant_grants.c.user_id == user_id, tenant_grants.c.tenant_id == tenant_id)
                .values(roles=roles, status=status.value, updated_at=now)
            )
        return GrantRow(user_id=user_id, tenant_id=tenant_id, roles=roles, status=status)

    async def seed_grant(
        self, user_id: str, tenant_id: str, roles: Sequence[str], now: datetime
    ) -> None:
        async with self.db.transaction() as session:
            await self.db.insert_if_absent(
                session,
                tenant_grants,
                user_id=user_id,
                tenant_id=tenant_id,
                roles=list(roles),
                status=GrantStatus.ACTIVE.value,
                created_at=now,
                updated_at=now,
            )

    async def delete_grant(self, user_id: str, tenant_id: str) -> bool:
        async with self.db.transaction() as session:
            await self.before.fence(session, f"grant:{tenant_id}:{user_id}")
            result = await session.execute(
                delete(tenant_grants).where(
                    tenant_grants.c.user_id == user_id, tenant_grants.c.tenant_id == tenant_id
                )
            )
        return rowcount(result) == 1

    async def get_grant(self, user_id: str, tenant_id: str) -> GrantRow | None:
        query = select(tenant_grants).where(
            tenant_grants.c.tenant_id == tenant_id, tenant_grants.c.user_id == user_id
        )
        async with self.db.transaction() as session:
            found = await fetch_first(session, query)
        return _grant(found) if found else None

    async def active_grant(self, user_id: str, tenant_id: str) -> GrantRow | None:
        grant = await self.get_grant(user_id, tenant_id)
        return grant if grant is not None and grant.status is GrantStatus.ACTIVE else None

    async def grants_for_user(self, user_id: str) -> list[GrantRow]:
        """The user's grants, oldest first (the first active one is the default tenant)."""
        query = (
            select(tenant_grants)
            .where(tenant_grants.c.user_id == user_id)
            .order_by(tenant_grants.c.created_at, tenant_grants.c.tenant_id)
        )
        async with self.db.transaction() as session:
            rows = await fetch_all(session, query)
        return [_grant(row) for row in rows]

    async def grants_in_tenant(self, tenant_id: str) -> list[GrantRow]:
        query = (
            select(tenant_grants)
            .where(tenant_grants.c.tenant_id == tenant_id)
            .order_by(tenant_grants.c.user_id)
        )
        async with self.db.transaction() as session:
            rows = await fetch_all(session, query)
        return [_grant(row) for row in rows]
