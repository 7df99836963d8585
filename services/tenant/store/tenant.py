"""Tenants, with the ids retired by a compensation (never given to another user)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from contracts.errors import ErrorKind
from contracts.tenant import MemberStatus, Plan, Quotas, Tenant, TenantMember, TenantStatus
from services.common.db import Store, fetch_first, fetch_value, now_utc, rowcount
from services.common.errors import NotFound, ServiceError
from services.tenant.store.quota import put_quotas
from services.tenant.store.rows import to_member, to_tenant
from services.tenant.store.tables import memberships, quotas, retired_ids, roles, tenants


class TenantsMixin(Store):
    async def create_tenant(
        self,
        tenant_id: str,
        name: str,
        plan: Plan,
        operation_id: str | None,
        creator_id: str | None = None,
    ) -> tuple[Tenant, bool]:
        """Creates the tenant (active) unless it exists; a tenant made by another operation
        (or seeded) is a conflict for ``operation_id``, and so is the retired id of a tenant
        another user made."""
        now = now_utc()
        async with self.db.transaction() as session:
            retired = (
                await session.execute(
                    select(retired_ids.c.created_by).where(retired_ids.c.tenant_id == tenant_id)
                )
            ).scalar_one_or_none()
            if retired is not None and retired != creator_id:
                raise ServiceError(ErrorKind.CONFLICT, "the tenant id is already taken")
            created = await self.db.insert_if_absent(
                session,
                tenants,
                ["id"],
                id=tenant_id,
                name=name,
                plan=plan.value,
                status=TenantStatus.ACTIVE.value,
                settings={},
                created_at=now,
                updated_at=now,
                created_by_operation=operation_id,
            )
            row = (
                (await session.execute(select(tenants).where(tenants.c.id == tenant_id)))
                .mappings()
                .one()
            )
        if not created and operation_id is not None and row["created_by_operation"] != operation_id:
            raise ServiceError(ErrorKind.CONFLICT, "the tenant id is already taken")
        return to_tenant(row, None), created

    async def delete_tenant(self, tenant_id: str, operation_id: str, creator_id: str) -> bool:
        """Compensation of create_tenant: only the tenant this operation created, with what
        is still under it (a late attempt of a step that committed after that step's own
        compensation ran); its id is retired for everyone but ``creator_id``."""
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(tenants).where(
                    tenants.c.id == tenant_id, tenants.c.created_by_operation == operation_id
                )
            )
            deleted = rowcount(result) == 1
            if deleted:
                for table in (memberships, roles, quotas):
                    await session.execute(delete(table).where(table.c.tenant_id == tenant_id))
                await self.db.insert_if_absent(
                    session,
                    retired_ids,
                    ["tenant_id"],
                    tenant_id=tenant_id,
                    created_by=creator_id,
                    operation_id=operation_id,
                    retired_at=now_utc(),
                )
        return deleted

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        async with self.db.transaction() as session:
            row = await fetch_first(session, select(tenants).where(tenants.c.id == tenant_id))
            if row is None:
                return None
            quota = await fetch_first(
                session, select(quotas).where(quotas.c.tenant_id == tenant_id)
            )
        return to_tenant(row, quota)

    async def update_tenant(
        self, tenant_id: str, name: str | None, settings: dict[str, Any] | None
    ) -> Tenant:
        values: dict[str, Any] = {"updated_at": now_utc()}
        if name is not None:
            values["name"] = name
        if settings is not None:
            values["settings"] = settings
        async with self.db.transaction() as session:
            result = await session.execute(
                update(tenants).where(tenants.c.id == tenant_id).values(**values)
            )
            if rowcount(result) != 1:
                raise NotFound("tenant")
        tenant = await self.get_tenant(tenant_id)
        assert tenant is not None
        return tenant

    async def set_status(self, tenant_id: str, status: TenantStatus, operation_id: str) -> bool:
        """True if this call changed the status (a retry finds it done)."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(tenants)
                .where(tenants.c.id == tenant_id, tenants.c.status != status.value)
                .values(status=status.value, status_operation=operation_id, updated_at=now_utc())
            )
        return rowcount(result) == 1

    async def set_plan(
        self, tenant_id: str, plan: Plan, quota: Quotas | None, operation_id: str | None
    ) -> None:
        """Plan and quotas together (apply_plan, and restore_plan with the previous ones)."""
        now = now_utc()
        async with self.db.transaction() as session:
            await session.execute(
                update(tenants)
                .where(tenants.c.id == tenant_id)
                .values(plan=plan.value, plan_operation=operation_id, updated_at=now)
            )
            await put_quotas(self.db, session, tenant_id, quota, operation_id)

    async def plan_operation(self, tenant_id: str) -> str | None:
        async with self.db.transaction() as session:
            value = await fetch_value(
                session, select(tenants.c.plan_operation).where(tenants.c.id == tenant_id)
            )
        return None if value is None else str(value)

    async def status_operation(self, tenant_id: str) -> str | None:
        """The workflow that last changed the tenant's status (the suspension to resume)."""
        async with self.db.transaction() as session:
            value = await fetch_value(
                session, select(tenants.c.status_operation).where(tenants.c.id == tenant_id)
            )
        return None if value is None else str(value)

    async def tenants_of(self, user_id: str) -> list[tuple[Tenant, TenantMember]]:
        """The tenants where the user has an active membership (keyed by user: their own)."""
        rows = await self.db.all_rows(
            select(memberships)
            .where(
                memberships.c.user_id == user_id,
                memberships.c.status == MemberStatus.ACTIVE.value,
            )
            .order_by(memberships.c.tenant_id)
        )
        found: list[tuple[Tenant, TenantMember]] = []
        for row in rows:
            tenant = await self.get_tenant(row["tenant_id"])
            if tenant is not None:
                found.append((tenant, to_member(row)))
        return found
