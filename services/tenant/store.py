"""The tenant service's tables and every query on them.

The tenant service is the source of truth for tenants, memberships and roles (auth's grants
and the user service's membership projection follow it through workflows), for the billing
module's plans and invoices, and for each user's current tenant with the switch audit.

Every query of tenant-owned data filters by tenant. Writes made for a workflow carry its id
(``operation_id``), so a retry recognises its own earlier write and a compensation undoes
only what its own workflow did.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.errors import ErrorKind
from contracts.tenant import (
    DEFAULT_ROLES,
    Invoice,
    InvoiceStatus,
    MembershipChange,
    MemberSnapshot,
    MemberStatus,
    Plan,
    Quotas,
    Tenant,
    TenantMember,
    TenantStatus,
)
from services.common.db import Database, rowcount
from services.common.errors import NotFound, ServiceError
from services.tenant.billing import PlanTerms

metadata = MetaData()

tenants = Table(
    "tenant_tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("plan", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("settings", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The provisioning workflow that created it (None: seeded).
    Column("created_by_operation", String(255), nullable=True),
    # The workflow that last changed the plan / the status (compensations check it).
    Column("plan_operation", String(255), nullable=True),
    Column("status_operation", String(255), nullable=True),
)

memberships = Table(
    "tenant_memberships",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("invited_by", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by_operation", String(255), nullable=True),
    Index("ix_tenant_memberships_user", "user_id"),
)

roles = Table(
    "tenant_roles",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("name", String(50), primary_key=True),
    Column("permissions", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by_operation", String(255), nullable=True),
)

quotas = Table(
    "tenant_quotas",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("max_users", Integer, nullable=False),
    Column("storage_bytes", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("operation_id", String(255), nullable=True),
)

plans = Table(
    "tenant_plans",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("price_cents", Integer, nullable=False),
    Column("max_users", Integer, nullable=False),
    Column("storage_bytes", BigInteger, nullable=False),
)

invoices = Table(
    "tenant_invoices",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("plan", String(32), nullable=False),
    Column("previous_plan", String(32), nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("operation_id", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("paid_at", DateTime(timezone=True), nullable=True),
    Index("ix_tenant_invoices_tenant", "tenant_id", "created_at"),
)

# Each user's current tenant (what tenant_switching updates).
current_tenants = Table(
    "tenant_current",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("operation_id", String(255), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The switch audit: one row per switch, with the current-tenant row it replaced (its
# compensation puts that row back and removes the audit row).
switches = Table(
    "tenant_switches",
    metadata,
    Column("operation_id", String(255), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("from_tenant_id", String(64), nullable=True),
    Column("to_tenant_id", String(64), nullable=False),
    Column("previous", JSON, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_tenant_switches_user", "user_id", "at"),
)

_IDS = uuid.UUID("8d3e5b71-2f4a-4c09-b6d8-1e7a9c3f5b20")


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(_IDS, "|".join(parts)))


def now_utc() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _tenant(row: Mapping[Any, Any], quota: Mapping[Any, Any] | None) -> Tenant:
    return Tenant(
        id=row["id"],
        name=row["name"],
        plan=Plan(row["plan"]),
        status=TenantStatus(row["status"]),
        settings=dict(row["settings"] or {}),
        quotas=None
        if quota is None
        else Quotas(max_users=quota["max_users"], storage_bytes=quota["storage_bytes"]),
        created_at=_utc(row["created_at"]) or now_utc(),
    )


def _member(row: Mapping[Any, Any]) -> TenantMember:
    return TenantMember(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        roles=list(row["roles"]),
        status=MemberStatus(row["status"]),
        invited_by=row["invited_by"],
        created_at=_utc(row["created_at"]) or now_utc(),
    )


def _invoice(row: Mapping[Any, Any]) -> Invoice:
    return Invoice(
        id=row["id"],
        tenant_id=row["tenant_id"],
        plan=Plan(row["plan"]),
        previous_plan=Plan(row["previous_plan"]),
        amount_cents=row["amount_cents"],
        currency=row["currency"],
        status=InvoiceStatus(row["status"]),
        operation_id=row["operation_id"],
        created_at=_utc(row["created_at"]) or now_utc(),
        paid_at=_utc(row["paid_at"]),
    )


def _json_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in row.items()
    }


class TenantStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Tenants --------------------------------------------------------------------------

    async def create_tenant(
        self, tenant_id: str, name: str, plan: Plan, operation_id: str | None
    ) -> tuple[Tenant, bool]:
        """Creates the tenant (active) unless it exists; a tenant made by another operation
        (or seeded) is a conflict for ``operation_id``."""
        now = now_utc()
        async with self.db.transaction() as session:
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
        return _tenant(row, None), created

    async def delete_tenant(self, tenant_id: str, operation_id: str) -> bool:
        """Compensation of create_tenant: only the tenant this operation created."""
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(tenants).where(
                    tenants.c.id == tenant_id, tenants.c.created_by_operation == operation_id
                )
            )
        return rowcount(result) == 1

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        async with self.db.transaction() as session:
            row = (
                (await session.execute(select(tenants).where(tenants.c.id == tenant_id)))
                .mappings()
                .first()
            )
            if row is None:
                return None
            quota = (
                (await session.execute(select(quotas).where(quotas.c.tenant_id == tenant_id)))
                .mappings()
                .first()
            )
        return _tenant(row, quota)

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
            await self._put_quotas(session, tenant_id, quota, operation_id)

    async def plan_operation(self, tenant_id: str) -> str | None:
        async with self.db.transaction() as session:
            value = (
                await session.execute(
                    select(tenants.c.plan_operation).where(tenants.c.id == tenant_id)
                )
            ).scalar_one_or_none()
        return None if value is None else str(value)

    async def status_operation(self, tenant_id: str) -> str | None:
        """The workflow that last changed the tenant's status (the suspension to resume)."""
        async with self.db.transaction() as session:
            value = (
                await session.execute(
                    select(tenants.c.status_operation).where(tenants.c.id == tenant_id)
                )
            ).scalar_one_or_none()
        return None if value is None else str(value)

    # Quotas ---------------------------------------------------------------------------

    async def _put_quotas(
        self, session: AsyncSession, tenant_id: str, quota: Quotas | None, operation_id: str | None
    ) -> None:
        if quota is None:
            await session.execute(delete(quotas).where(quotas.c.tenant_id == tenant_id))
            return
        values = {
            "max_users": quota.max_users,
            "storage_bytes": quota.storage_bytes,
            "updated_at": now_utc(),
            "operation_id": operation_id,
        }
        stmt = (
            self.db.insert(quotas)
            .values(tenant_id=tenant_id, **values)
            .on_conflict_do_update(index_elements=["tenant_id"], set_=values)
        )
        await session.execute(stmt)

    async def set_quotas(self, tenant_id: str, quota: Quotas, operation_id: str | None) -> bool:
        """Sets the quotas if the tenant has none; True if this call set them."""
        async with self.db.transaction() as session:
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

    # Roles ----------------------------------------------------------------------------

    async def create_default_roles(self, tenant_id: str, operation_id: str | None) -> list[str]:
        """The default role definitions; the names this call created."""
        now = now_utc()
        created: list[str] = []
        async with self.db.transaction() as session:
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
            rows = (
                (await session.execute(select(roles).where(roles.c.tenant_id == tenant_id)))
                .mappings()
                .all()
            )
        return {row["name"]: list(row["permissions"]) for row in rows}

    # Memberships ----------------------------------------------------------------------

    async def add_member(
        self,
        tenant_id: str,
        user_id: str,
        member_roles: list[str],
        invited_by: str | None,
        operation_id: str | None,
    ) -> tuple[TenantMember, bool]:
        """Adds the member unless present (an existing member is left as is)."""
        async with self.db.transaction() as session:
            created = await self.db.insert_if_absent(
                session,
                memberships,
                ["tenant_id", "user_id"],
                tenant_id=tenant_id,
                user_id=user_id,
                roles=member_roles,
                status=MemberStatus.ACTIVE.value,
                invited_by=invited_by,
                created_at=now_utc(),
                created_by_operation=operation_id,
            )
            row = (
                (
                    await session.execute(
                        select(memberships).where(
                            memberships.c.tenant_id == tenant_id,
                            memberships.c.user_id == user_id,
                        )
                    )
                )
                .mappings()
                .one()
            )
        return _member(row), created

    async def remove_member(
        self, tenant_id: str, user_id: str, operation_id: str | None = None
    ) -> bool:
        """Removes the membership; with ``operation_id`` only if that operation created it
        (a compensation never removes a membership that existed before)."""
        query = delete(memberships).where(
            memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id
        )
        if operation_id is not None:
            query = query.where(memberships.c.created_by_operation == operation_id)
        async with self.db.transaction() as session:
            result = await session.execute(query)
        return rowcount(result) == 1

    async def member(self, tenant_id: str, user_id: str) -> TenantMember | None:
        row = await self.db.first(
            select(memberships).where(
                memberships.c.tenant_id == tenant_id,
                memberships.c.user_id == user_id,
            )
        )
        return None if row is None else _member(row)

    async def members(self, tenant_id: str) -> list[TenantMember]:
        rows = await self.db.all_rows(
            select(memberships)
            .where(memberships.c.tenant_id == tenant_id)
            .order_by(memberships.c.created_at, memberships.c.user_id)
        )
        return [_member(row) for row in rows]

    async def member_count(self, tenant_id: str) -> int:
        async with self.db.transaction() as session:
            value = (
                await session.execute(
                    select(func.count())
                    .select_from(memberships)
                    .where(
                        memberships.c.tenant_id == tenant_id,
                        memberships.c.status == MemberStatus.ACTIVE.value,
                    )
                )
            ).scalar_one()
        return int(value)

    async def set_member_roles(
        self, tenant_id: str, user_id: str, member_roles: list[str]
    ) -> TenantMember:
        """Changes a member's roles; the last owner keeps the owner role (checked in the
        same transaction as the change)."""
        async with self.db.transaction() as session:
            row = (
                (
                    await session.execute(
                        select(memberships)
                        .where(
                            memberships.c.tenant_id == tenant_id,
                            memberships.c.user_id == user_id,
                        )
                        .with_for_update()
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound("member")
            if "owner" in row["roles"] and "owner" not in member_roles:
                await self._keep_an_owner(session, tenant_id, user_id)
            await session.execute(
                update(memberships)
                .where(memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id)
                .values(roles=member_roles)
            )
        found = await self.member(tenant_id, user_id)
        assert found is not None
        return found

    async def _keep_an_owner(self, session: AsyncSession, tenant_id: str, user_id: str) -> None:
        rows = (
            await session.execute(
                select(memberships.c.user_id, memberships.c.roles).where(
                    memberships.c.tenant_id == tenant_id,
                    memberships.c.status == MemberStatus.ACTIVE.value,
                    memberships.c.user_id != user_id,
                )
            )
        ).all()
        if not any("owner" in list(member_roles) for _user, member_roles in rows):
            raise ServiceError(ErrorKind.CONFLICT, "the last owner cannot be demoted or removed")

    async def remove_member_keeping_owner(self, tenant_id: str, user_id: str) -> TenantMember:
        async with self.db.transaction() as session:
            row = (
                (
                    await session.execute(
                        select(memberships).where(
                            memberships.c.tenant_id == tenant_id,
                            memberships.c.user_id == user_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound("member")
            if "owner" in row["roles"]:
                await self._keep_an_owner(session, tenant_id, user_id)
            await session.execute(
                delete(memberships).where(
                    memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id
                )
            )
        return _member(row)

    async def would_leave_no_owner(
        self, tenant_id: str, user_id: str, member_roles: list[str] | None
    ) -> bool:
        """True if setting the member's roles to ``member_roles`` (None: removing them)
        would leave the tenant without an active owner (checked again by the change)."""
        member = await self.member(tenant_id, user_id)
        if member is None or "owner" not in member.roles:
            return False
        if member_roles is not None and "owner" in member_roles:
            return False
        async with self.db.transaction() as session:
            try:
                await self._keep_an_owner(session, tenant_id, user_id)
            except ServiceError:
                return True
        return False

    async def member_snapshot(self, tenant_id: str, user_id: str) -> MemberSnapshot | None:
        """The membership row as stored (what restore_membership puts back)."""
        row = await self.db.first(
            select(memberships).where(
                memberships.c.tenant_id == tenant_id,
                memberships.c.user_id == user_id,
            )
        )
        if row is None:
            return None
        return MemberSnapshot(
            tenant_id=row["tenant_id"],
            user_id=row["user_id"],
            roles=list(row["roles"]),
            status=MemberStatus(row["status"]),
            invited_by=row["invited_by"],
            created_at=_utc(row["created_at"]) or now_utc(),
            created_by_operation=row["created_by_operation"],
        )

    async def change_membership(
        self,
        tenant_id: str,
        user_id: str,
        change: MembershipChange,
        member_roles: list[str],
        invited_by: str | None,
        operation_id: str,
    ) -> tuple[TenantMember | None, bool]:
        """One change on behalf of ``operation_id``, with the last-owner rule checked in the
        same transaction. Returns the membership after it (None: removed) and whether this
        call changed anything (False: a retry found its change made)."""
        where = (memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id)
        async with self.db.transaction() as session:
            row = (
                (await session.execute(select(memberships).where(*where).with_for_update()))
                .mappings()
                .first()
            )
            if change is MembershipChange.ADD:
                if row is not None:
                    if row["created_by_operation"] == operation_id:
                        return _member(row), False
                    raise ServiceError(
                        ErrorKind.CONFLICT, "already a member", fields={"user_id": "member"}
                    )
                await session.execute(
                    memberships.insert().values(
                        tenant_id=tenant_id,
                        user_id=user_id,
                        roles=member_roles,
                        status=MemberStatus.ACTIVE.value,
                        invited_by=invited_by,
                        created_at=now_utc(),
                        created_by_operation=operation_id,
                    )
                )
            elif change is MembershipChange.SET_ROLES:
                if row is None:
                    raise NotFound("member")
                if list(row["roles"]) == member_roles:
                    return _member(row), False
                if "owner" in row["roles"] and "owner" not in member_roles:
                    await self._keep_an_owner(session, tenant_id, user_id)
                await session.execute(update(memberships).where(*where).values(roles=member_roles))
            else:
                if row is None:
                    return None, False
                if "owner" in row["roles"]:
                    await self._keep_an_owner(session, tenant_id, user_id)
                await session.execute(delete(memberships).where(*where))
                return None, True
            found = (await session.execute(select(memberships).where(*where))).mappings().one()
        return _member(found), True

    async def restore_membership(
        self, tenant_id: str, user_id: str, operation_id: str, previous: MemberSnapshot | None
    ) -> bool:
        """Compensation of change_membership: the row as ``previous`` was; with None, the row
        is removed only if ``operation_id`` created it. True if this call changed anything."""
        where = (memberships.c.tenant_id == tenant_id, memberships.c.user_id == user_id)
        async with self.db.transaction() as session:
            if previous is None:
                result = await session.execute(
                    delete(memberships).where(
                        *where, memberships.c.created_by_operation == operation_id
                    )
                )
                return rowcount(result) == 1
            values = {
                "roles": previous.roles,
                "status": previous.status.value,
                "invited_by": previous.invited_by,
                "created_at": previous.created_at,
                "created_by_operation": previous.created_by_operation,
            }
            current = (await session.execute(select(memberships).where(*where))).mappings().first()
            if current is not None and all(
                _utc(current[key]) == value if key == "created_at" else current[key] == value
                for key, value in values.items()
            ):
                return False
            await session.execute(
                self.db.insert(memberships)
                .values(tenant_id=tenant_id, user_id=user_id, **values)
                .on_conflict_do_update(index_elements=["tenant_id", "user_id"], set_=values)
            )
        return True

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
                found.append((tenant, _member(row)))
        return found

    # Current tenant and switch audit ----------------------------------------------------

    async def current_tenant(self, user_id: str) -> str | None:
        async with self.db.transaction() as session:
            value = (
                await session.execute(
                    select(current_tenants.c.tenant_id).where(current_tenants.c.user_id == user_id)
                )
            ).scalar_one_or_none()
        return None if value is None else str(value)

    async def set_current_tenant(
        self, user_id: str, tenant_id: str, operation_id: str
    ) -> str | None:
        """Points the user at ``tenant_id`` and writes the switch audit row (with the row it
        replaced) in one transaction; a retry finds its audit row and changes nothing.
        Returns the previous current tenant."""
        now = now_utc()
        async with self.db.transaction() as session:
            audit = (
                (
                    await session.execute(
                        select(switches).where(switches.c.operation_id == operation_id)
                    )
                )
                .mappings()
                .first()
            )
            if audit is not None:
                return None if audit["from_tenant_id"] is None else str(audit["from_tenant_id"])
            previous = (
                (
                    await session.execute(
                        select(current_tenants)
                        .where(current_tenants.c.user_id == user_id)
                        .with_for_update()
                    )
                )
                .mappings()
                .first()
            )
            await session.execute(
                self.db.insert(switches).values(
                    operation_id=operation_id,
                    user_id=user_id,
                    from_tenant_id=None if previous is None else previous["tenant_id"],
                    to_tenant_id=tenant_id,
                    previous=None if previous is None else _json_row(previous),
                    at=now,
                )
            )
            values = {"tenant_id": tenant_id, "operation_id": operation_id, "updated_at": now}
            await session.execute(
                self.db.insert(current_tenants)
                .values(user_id=user_id, **values)
                .on_conflict_do_update(index_elements=["user_id"], set_=values)
            )
        return None if previous is None else str(previous["tenant_id"])

    async def restore_current_tenant(self, user_id: str, operation_id: str) -> bool:
        """Compensation of set_current_tenant: puts the replaced row back (or removes the
        row if there was none) and removes the audit row, if this operation's switch is
        still the latest."""
        async with self.db.transaction() as session:
            audit = (
                (
                    await session.execute(
                        select(switches).where(
                            switches.c.operation_id == operation_id, switches.c.user_id == user_id
                        )
                    )
                )
                .mappings()
                .first()
            )
            if audit is None:
                return False
            current = (
                (
                    await session.execute(
                        select(current_tenants).where(current_tenants.c.user_id == user_id)
                    )
                )
                .mappings()
                .first()
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

    # Billing --------------------------------------------------------------------------

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
                await session.execute(
                    self.db.insert(plans)
                    .values(id=plan.plan.value, **values)
                    .on_conflict_do_update(index_elements=["id"], set_=values)
                )

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
        return None if row is None else _invoice(row)

    async def invoices_of(self, tenant_id: str) -> list[Invoice]:
        rows = await self.db.all_rows(
            select(invoices)
            .where(invoices.c.tenant_id == tenant_id)
            .order_by(invoices.c.created_at.desc())
        )
        return [_invoice(row) for row in rows]

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

    # Data-subject requests ------------------------------------------------------------

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
                "memberships": (await session.execute(member_query)).mappings().all(),
                "current_tenant": (await session.execute(current_query)).mappings().all(),
                "tenant_switches": (await session.execute(switch_query)).mappings().all(),
            }
        return {name: [_json_row(row) for row in rows] for name, rows in found.items()}

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
            result = (await session.execute(select(table).order_by(*key))).mappings().all()
        return [dict(row) for row in result]
