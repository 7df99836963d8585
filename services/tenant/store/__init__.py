"""The tenant service's tables and every query on them.

The tenant service is the source of truth for tenants, memberships and roles (auth's grants
and the user service's membership projection follow it through workflows), for the billing
module's plans and invoices, and for each user's current tenant with the switch audit.

Every query of tenant-owned data filters by tenant. Writes made for a workflow carry its id
(``operation_id``), so a retry recognises its own earlier write and a compensation undoes
only what its own workflow did.

One module per aggregate: ``tables`` (the schema), ``rows`` (rows as contract models),
``tenant`` (with the retired ids), ``membership``, ``role``, ``quota``, ``invoices`` (plans
and invoices), ``current`` (the current tenant and the switch audit) and ``subjects``
(data-subject requests); :class:`TenantStore` is made of their parts. (Module names are
singular so that none shadows a table this package exports, e.g. ``tenants``.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select

from contracts.tenant import Plan, Quotas
from services.common.before import BeforeLog
from services.common.db import Database, fetch_all, now_utc
from services.tenant.store.current import CurrentTenantMixin
from services.tenant.store.invoices import BillingMixin
from services.tenant.store.membership import MembershipsMixin
from services.tenant.store.quota import QuotasMixin
from services.tenant.store.role import RolesMixin
from services.tenant.store.subjects import SubjectsMixin
from services.tenant.store.tables import (
    current_tenants,
    memberships,
    metadata,
    operation_before,
    plans,
    quotas,
    roles,
    switches,
    tenants,
)
from services.tenant.store.tenant import TenantsMixin

__all__ = [
    "TenantStore",
    "current_tenants",
    "memberships",
    "metadata",
    "now_utc",
    "plans",
    "quotas",
    "roles",
    "switches",
    "tenants",
]


class TenantStore(
    TenantsMixin,
    QuotasMixin,
    RolesMixin,
    MembershipsMixin,
    CurrentTenantMixin,
    BillingMixin,
    SubjectsMixin,
):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.before = BeforeLog(db, operation_before)

    # Development seed and diagnostics -------------------------------------------------

    async def seed(
        self, tenant_id: str, name: str, plan: Plan, quota: Quotas, members: dict[str, list[str]]
    ) -> None:
        """Idempotent: creates what is missing, changes nothing that exists."""
        await self.create_tenant(tenant_id, name, plan, None)
        await self.create_default_roles(tenant_id, None)
        await self.set_quotas(tenant_id, quota, None)
        for user_id, member_roles in members.items():
            await self.add_member(tenant_id, user_id, member_roles, None, None)

    async def rows(self, table: Table) -> list[dict[str, Any]]:
        """Every row of ``table`` in key order (tests compare snapshots)."""
        key = list(table.primary_key.columns)
        async with self.db.transaction() as session:
            result = await fetch_all(session, select(table).order_by(*key))
        return [dict(row) for row in result]
