"""Nothing is made under a tenant that does not exist: the guard each write under a tenant
id runs in its own transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import fetch_value
from services.common.errors import NotFound
from services.tenant.store.tables import tenants


async def lock_existing_tenant(session: AsyncSession, tenant_id: str) -> None:
    """Raises "tenant not found" unless the tenant exists, and (PostgreSQL) holds its row
    until the transaction ends: a deletion of the tenant waits, and then removes what this
    transaction made with it (``delete_tenant``); after the deletion, nothing is made. Without
    it, a late attempt (one whose answer timed out) of a provisioning that was undone could
    leave a membership, roles or quotas of a tenant that is gone. (SQLite serialises writers:
    a deletion in between fails this transaction's write, and the attempt is retried.)"""
    found = await fetch_value(
        session, select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update()
    )
    if found is None:
        raise NotFound("tenant")
