"""Data-subject requests: the user's rows (in one tenant, or all), exported or erased."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from services.common.db import Store, fetch_all, json_row, rowcount
from services.tenant.store.tables import current_tenants, memberships, switches


class SubjectsMixin(Store):
    async def user_records(
        self, user_id: str, tenant_id: str | None
    ) -> dict[str, list[dict[str, Any]]]:
        """The user's rows (in one tenant, or all when None), as JSON-ready dicts."""
        member_query = select(memberships).where(memberships.c.user_id == user_id)
        switch_query = select(switches).where(switches.c.user_id == user_id)
        current_query = select(current_tenants).where(current_tenants.c.user_id == user_id)
        if tenant_id is not None:
            member_query = member_query.where(memberships.c.tenant_id == tenant_id)
            switch_query = switch_query.where(switches.c.to_tenant_id == tenant_id)
            current_query = current_query.where(current_tenants.c.tenant_id == tenant_id)
        async with self.db.transaction() as session:
            found = {
                "memberships": await fetch_all(session, member_query),
                "current_tenant": await fetch_all(session, current_query),
                "tenant_switches": await fetch_all(session, switch_query),
            }
        return {name: [json_row(row) for row in rows] for name, rows in found.items()}

    async def erase_user(self, user_id: str, tenant_id: str | None) -> dict[str, int]:
        member_query = delete(memberships).where(memberships.c.user_id == user_id)
        switch_query = delete(switches).where(switches.c.user_id == user_id)
        current_query = delete(current_tenants).where(current_tenants.c.user_id == user_id)
        if tenant_id is not None:
            member_query = member_query.where(memberships.c.tenant_id == tenant_id)
            switch_query = switch_query.where(switches.c.to_tenant_id == tenant_id)
            current_query = current_query.where(current_tenants.c.tenant_id == tenant_id)
        async with self.db.transaction() as session:
            counts = {
                "tenant_memberships": rowcount(await session.execute(member_query)),
                "tenant_current": rowcount(await session.execute(current_query)),
                "tenant_switches": rowcount(await session.execute(switch_query)),
            }
        return counts
