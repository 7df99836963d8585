"""Quotas: a tenant's limits (set with its plan, or on their own)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.tenant import Quotas
from services.common.db import Database, Store, now_utc, rowcount
from services.tenant.store.guard import lock_existing_tenant
from services.tenant.store.tables import quotas


async def put_quotas(
    db: Database,
    session: AsyncSession,
    tenant_id: str,
    quota: Quotas | None,
    operation_id: str | None,
) -> None:
    """The tenant's quotas set to ``quota`` in ``session`` (None: removed)."""
    if quota is None:
        await session.execute(delete(quotas).where(quotas.c.tenant_id == tenant_id))
        return
    values = {
        "max_users": quota.max_users,
        "storage_bytes": quota.storage_bytes,
        "updated_at": now_utc(),
        "operation_id": operation_id,
    }
    await session.execute(db.upsert(quotas, {"tenant_id": tenant_id}, values))


class QuotasMixin(Store):
    async def set_quotas(self, tenant_id: str, quota: Quotas, operation_id: str | None) -> bool:
        """Sets the quotas if the tenant has none; True if this call set them."""
        async with self.db.transaction() as session:
            await lock_existing_tenant(session, tenant_id)
            return await self.db.insert_if_absent(
                session,
                quotas,
                ["tenant_id"],
                tenant_id=tenant_id,
                max_users=quota.max_users,
                storage_bytes=quota.storage_bytes,
                updated_at=now_utc(),
                operation_id=operation_id,
            )

    async def clear_quotas(self, tenant_id: str, operation_id: str) -> bool:
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(quotas).where(
                    quotas.c.tenant_id == tenant_id, quotas.c.operation_id == operation_id
                )
            )
        return rowcount(result) == 1
