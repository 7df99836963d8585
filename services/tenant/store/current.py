"""Each user's current tenant, with the switch audit (one row per switch)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from services.common.db import Store, fetch_first, fetch_value, json_row, now_utc
from services.tenant.store.tables import current_tenants, switches


class CurrentTenantMixin(Store):
    async def current_tenant(self, user_id: str) -> str | None:
        async with self.db.transaction() as session:
            value = await fetch_value(
                session,
                select(current_tenants.c.tenant_id).where(current_tenants.c.user_id == user_id),
            )
        return None if value is None else str(value)

    async def set_current_tenant(
        self, user_id: str, tenant_id: str, operation_id: str
    ) -> str | None:
        """Points the user at ``tenant_id`` and writes the switch audit row (with the row it
        replaced) in one transaction; a retry finds its audit row and changes nothing.
        Returns the previous current tenant."""
        now = now_utc()
        async with self.db.transaction() as session:
            audit = await fetch_first(
                session, select(switches).where(switches.c.operation_id == operation_id)
            )
            if audit is not None:
                return None if audit["from_tenant_id"] is None else str(audit["from_tenant_id"])
            previous = await fetch_first(
                session,
                select(current_tenants)
                .where(current_tenants.c.user_id == user_id)
                .with_for_update(),
            )
            await session.execute(
                self.db.insert(switches).values(
                    operation_id=operation_id,
                    user_id=user_id,
                    from_tenant_id=None if previous is None else previous["tenant_id"],
                    to_tenant_id=tenant_id,
                    previous=None if previous is None else json_row(previous),
                    at=now,
                )
            )
            values = {"tenant_id": tenant_id, "operation_id": operation_id, "updated_at": now}
            await session.execute(self.db.upsert(current_tenants, {"user_id": user_id}, values))
        return None if previous is None else str(previous["tenant_id"])

    async def restore_current_tenant(self, user_id: str, operation_id: str) -> bool:
        """Compensation of set_current_tenant: puts the replaced row back (or removes the
        row if there was none) and removes the audit row, if this operation's switch is
        still the latest."""
        async with self.db.transaction() as session:
            audit = await fetch_first(
                session,
                select(switches).where(
                    switches.c.operation_id == operation_id, switches.c.user_id == user_id
                ),
            )
            if audit is None:
                return False
            current = await fetch_first(
                session, select(current_tenants).where(current_tenants.c.user_id == user_id)
            )
            if current is not None and current["operation_id"] == operation_id:
                await session.execute(
                    delete(current_tenants).where(current_tenants.c.user_id == user_id)
                )
                previous = audit["previous"]
                if previous is not None:
                    await session.execute(
                        current_tenants.insert().values(
                            user_id=user_id,
                            tenant_id=previous["tenant_id"],
                            operation_id=previous["operation_id"],
                            updated_at=datetime.fromisoformat(previous["updated_at"]),
                        )
                    )
            await session.execute(delete(switches).where(switches.c.operation_id == operation_id))
        return True
