"""Rows as the contract models the aggregates return."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from contracts.tenant import (
    Invoice,
    InvoiceStatus,
    MemberStatus,
    Plan,
    Quotas,
    Tenant,
    TenantMember,
    TenantStatus,
)
from services.common.db import now_utc


def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def to_tenant(row: Mapping[Any, Any], quota: Mapping[Any, Any] | None) -> Tenant:
    return Tenant(
        id=row["id"],
        name=row["name"],
        plan=Plan(row["plan"]),
        status=TenantStatus(row["status"]),
        settings=dict(row["settings"] or {}),
        quotas=None
        if quota is None
        else Quotas(max_users=quota["max_users"], storage_bytes=quota["storage_bytes"]),
        created_at=aware(row["created_at"]) or now_utc(),
    )


def to_member(row: Mapping[Any, Any]) -> TenantMember:
    return TenantMember(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        roles=list(row["roles"]),
        status=MemberStatus(row["status"]),
        invited_by=row["invited_by"],
        created_at=aware(row["created_at"]) or now_utc(),
    )


def to_invoice(row: Mapping[Any, Any]) -> Invoice:
    return Invoice(
        id=row["id"],
        tenant_id=row["tenant_id"],
        plan=Plan(row["plan"]),
        previous_plan=Plan(row["previous_plan"]),
        amount_cents=row["amount_cents"],
        currency=row["currency"],
        status=InvoiceStatus(row["status"]),
        operation_id=row["operation_id"],
        created_at=aware(row["created_at"]) or now_utc(),
        paid_at=aware(row["paid_at"]),
    )
