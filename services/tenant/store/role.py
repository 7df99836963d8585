"""Roles: each tenant's role definitions (the defaults, made at provisioning)."""

from __future__ import annotations

from sqlalchemy import delete, select

from contracts.tenant import DEFAULT_ROLES
from services.common.db import Store, fetch_all, now_utc, rowcount
from services.tenant.store.guard import lock_existing_tenant
from services.tenant.store.tables import roles


class RolesMixin(Store):
    async def create_default_roles(self, tenant_id: str, operation_id: str | None) -> list[str]:
        """The default role definitions; the names this call created."""
        now = now_utc()
        created: list[str] = []
        async with self.db.transaction() as session:
            await lock_existing_tenant(session, tenant_id)
            for name, permissions in DEFAULT_ROLES.items():
                if await self.db.insert_if_absent(
                    session,
                    roles,
                    ["tenant_id", "name"],
                    tenant_id=tenant_id,
                    name=name,
                    permissions=permissions,
                    created_at=now,
                    created_by_operation=operation_id,
                ):
                    created.append(name)
        return created

    async def delete_roles(self, tenant_id: str, operation_id: str) -> int:
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(roles).where(
                    roles.c.tenant_id == tenant_id, roles.c.created_by_operation == operation_id
                )
            )
        return rowcount(result)

    async def roles_of(self, tenant_id: str) -> dict[str, list[str]]:
        async with self.db.transaction() as session:
            rows = await fetch_all(session, select(roles).where(roles.c.tenant_id == tenant_id))
        return {row["name"]: list(row["permissions"]) for row in rows}
