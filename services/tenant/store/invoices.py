"""Billing: the plan catalogue (from the billing module) and the invoices of plan changes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select, update

from contracts.tenant import Invoice, InvoiceStatus, Plan
from services.common.db import Store, now_utc, rowcount
from services.tenant.billing import PlanTerms
from services.tenant.store.rows import to_invoice
from services.tenant.store.tables import invoices, plans

_IDS = uuid.UUID("8d3e5b71-2f4a-4c09-b6d8-1e7a9c3f5b20")


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(_IDS, "|".join(parts)))


class BillingMixin(Store):
    async def sync_plans(self, terms: Sequence[PlanTerms]) -> None:
        """The plan catalogue from the billing module (insert-if-absent, price updates)."""
        async with self.db.transaction() as session:
            for plan in terms:
                values = {
                    "name": plan.name,
                    "price_cents": plan.price_cents,
                    "max_users": plan.quotas.max_users,
                    "storage_bytes": plan.quotas.storage_bytes,
                }
                await session.execute(self.db.upsert(plans, {"id": plan.plan.value}, values))

    async def create_invoice(
        self,
        tenant_id: str,
        operation_id: str,
        plan: Plan,
        previous_plan: Plan,
        amount_cents: int,
    ) -> Invoice:
        """One invoice per operation (its id derives from the operation)."""
        async with self.db.transaction() as session:
            await self.db.insert_if_absent(
                session,
                invoices,
                ["id"],
                id=derived_id("invoice", operation_id),
                tenant_id=tenant_id,
                plan=plan.value,
                previous_plan=previous_plan.value,
                amount_cents=amount_cents,
                currency="USD",
                status=InvoiceStatus.PENDING.value,
                operation_id=operation_id,
                created_at=now_utc(),
                paid_at=None,
            )
        found = await self.invoice(tenant_id, derived_id("invoice", operation_id))
        assert found is not None
        return found

    async def invoice(self, tenant_id: str, invoice_id: str) -> Invoice | None:
        row = await self.db.first(
            select(invoices).where(invoices.c.id == invoice_id, invoices.c.tenant_id == tenant_id)
        )
        return None if row is None else to_invoice(row)

    async def invoices_of(self, tenant_id: str) -> list[Invoice]:
        rows = await self.db.all_rows(
            select(invoices)
            .where(invoices.c.tenant_id == tenant_id)
            .order_by(invoices.c.created_at.desc())
        )
        return [to_invoice(row) for row in rows]

    async def set_invoice_status(
        self, tenant_id: str, invoice_id: str, status: InvoiceStatus
    ) -> bool:
        paid_at = now_utc() if status is InvoiceStatus.PAID else None
        async with self.db.transaction() as session:
            result = await session.execute(
                update(invoices)
                .where(
                    invoices.c.id == invoice_id,
                    invoices.c.tenant_id == tenant_id,
                    invoices.c.status != status.value,
                )
                .values(status=status.value, paid_at=paid_at)
            )
        return rowcount(result) == 1

    async def delete_invoice(self, tenant_id: str, invoice_id: str) -> bool:
        """Compensation of create_invoice: an unpaid invoice only."""
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(invoices).where(
                    invoices.c.id == invoice_id,
                    invoices.c.tenant_id == tenant_id,
                    invoices.c.status == InvoiceStatus.PENDING.value,
                )
            )
        return rowcount(result) == 1
