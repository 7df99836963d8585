"""The tenant service's activities (worker mode): the four other services' workflows call
(add/remove member, export/erase a user's data) and the steps of the tenant sagas.

Each one is idempotent (ids and ``operation_id`` come from the calling workflow; writes are
insert-if-absent or guarded updates) and checks the propagated caller identity: tenant-owned
data is touched only from that tenant's context (``ensure_tenant``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.tenant import (
    MANAGER_ROLES,
    AddMemberInput,
    ApplyPlanInput,
    Changed,
    ChangeMembershipInput,
    CreateInvoiceInput,
    CreateTenantInput,
    CurrentTenantSet,
    Invoice,
    InvoiceInput,
    InvoiceStatus,
    ListMembersInput,
    LoadTenantDataInput,
    MemberAdded,
    MemberList,
    MembershipChange,
    MembershipChanged,
    MemberState,
    MemberStatus,
    PrepareUpgradeInput,
    ReadMembershipInput,
    RemoveMemberInput,
    RestoreMembershipInput,
    RestorePlanInput,
    SetCurrentTenantInput,
    SetTenantStatusInput,
    SwitchAccess,
    SwitchAccessInput,
    Tenant,
    TenantActivity,
    TenantData,
    TenantOperationInput,
    TenantStatus,
    TenantTask,
    UpgradePlan,
    UserDataErased,
    UserDataExport,
    UserDataRequest,
)
from services.common.activity import service_activity
from services.common.errors import (
    NotFound,
    ServiceError,
    data_subject_scope,
    ensure_tenant,
    require_context,
)
from services.tenant import billing
from services.tenant.store import TenantStore


def is_manager(context: RequestContext) -> bool:
    return bool(MANAGER_ROLES.intersection(context.roles))


class TenantActivities:
    def __init__(self, store: TenantStore, *, step_delay_seconds: float = 0.0) -> None:
        self.store = store
        # Test-only: each write step waits this long after committing, so a test can kill
        # the worker between "done" and "reported to Temporal".
        self.step_delay_seconds = step_delay_seconds

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.add_member,
            self.remove_member,
            self.export_user_data,
            self.erase_user_data,
            self.create_tenant,
            self.delete_tenant,
            self.create_default_roles,
            self.delete_roles,
            self.set_quotas,
            self.clear_quotas,
            self.check_switch_access,
            self.set_current_tenant,
            self.restore_current_tenant,
            self.load_tenant_data,
            self.prepare_upgrade,
            self.create_invoice,
            self.delete_invoice,
            self.charge_invoice,
            self.refund_invoice,
            self.apply_plan,
            self.restore_plan,
            self.set_tenant_status,
            self.list_members,
            self.read_membership,
            self.change_membership,
            self.restore_membership,
        ]

    async def _pause(self) -> None:
        if self.step_delay_seconds:
            await asyncio.sleep(self.step_delay_seconds)

    async def _tenant(self, tenant_id: str) -> Tenant:
        """The caller's own tenant (another tenant is an isolation violation)."""
        ensure_tenant(tenant_id, "tenant")
        tenant = await self.store.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound("tenant")
        return tenant

    def _manager(self, tenant_id: str) -> RequestContext:
        context = ensure_tenant(tenant_id, "tenant")
        if not is_manager(context):
            raise ServiceError(ErrorKind.AUTHORIZATION, "only tenant admins can do this")
        return context

    # For the cross-service workflows ----------------------------------------------------

    @service_activity(TenantActivity.ADD_MEMBER)
    async def add_member(self, input: AddMemberInput) -> MemberAdded:
        """In the target tenant's context, by an owner/admin caller (or a workflow whose
        propagated context is such a caller in that tenant)."""
        context = self._manager(input.tenant_id)
        await self._tenant(input.tenant_id)
        member, created = await self.store.add_member(
            input.tenant_id, input.user_id, input.roles, context.user_id, input.operation_id
        )
        return MemberAdded(
            tenant_id=member.tenant_id, user_id=member.user_id, roles=member.roles, created=created
        )

    @service_activity(TenantActivity.REMOVE_MEMBER)
    async def remove_member(self, input: RemoveMemberInput) -> Changed:
        """Compensation of add_member: removes the membership only if ``operation_id``
        created it (an earlier membership stays)."""
        self._manager(input.tenant_id)
        removed = await self.store.remove_member(input.tenant_id, input.user_id, input.operation_id)
        return Changed(changed=removed)

    @service_activity(TenantActivity.EXPORT_USER_DATA)
    async def export_user_data(self, input: UserDataRequest) -> UserDataExport:
        records = await self.store.user_records(input.user_id, data_subject_scope(input.user_id))
        return UserDataExport(service="tenant", user_id=input.user_id, records=records)

    @service_activity(TenantActivity.ERASE_USER_DATA)
    async def erase_user_data(self, input: UserDataRequest) -> UserDataErased:
        """Deletes the user's memberships, current-tenant pointer and switch audit (a retry
        deletes nothing more)."""
        rows = await self.store.erase_user(input.user_id, data_subject_scope(input.user_id))
        return UserDataErased(service="tenant", user_id=input.user_id, rows=rows)

    # tenant_provisioning ----------------------------------------------------------------

    @service_activity(TenantTask.CREATE_TENANT)
    async def create_tenant(self, input: CreateTenantInput) -> Tenant:
        context = ensure_tenant(input.tenant_id, "tenant")
        tenant, _created = await self.store.create_tenant(
            input.tenant_id, input.name, input.plan, input.operation_id, context.user_id
        )
        await self._pause()
        return tenant

    @service_activity(TenantTask.DELETE_TENANT)
    async def delete_tenant(self, input: TenantOperationInput) -> Changed:
        context = ensure_tenant(input.tenant_id, "tenant")
        deleted = await self.store.delete_tenant(
            input.tenant_id, input.operation_id, context.user_id
        )
        return Changed(changed=deleted)

    @service_activity(TenantTask.CREATE_DEFAULT_ROLES)
    async def create_default_roles(self, input: TenantOperationInput) -> list[str]:
        await self._tenant(input.tenant_id)
        await self.store.create_default_roles(input.tenant_id, input.operation_id)
        await self._pause()
        return sorted(await self.store.roles_of(input.tenant_id))

    @service_activity(TenantTask.DELETE_ROLES)
    async def delete_roles(self, input: TenantOperationInput) -> Changed:
        ensure_tenant(input.tenant_id, "tenant")
        deleted = await self.store.delete_roles(input.tenant_id, input.operation_id)
        return Changed(changed=deleted > 0)

    @service_activity(TenantTask.SET_QUOTAS)
    async def set_quotas(self, input: TenantOperationInput) -> Tenant:
        """The quotas of the tenant's plan."""
        tenant = await self._tenant(input.tenant_id)
        await self.store.set_quotas(
            input.tenant_id, billing.terms(tenant.plan).quotas, input.operation_id
        )
        await self._pause()
        return await self._tenant(input.tenant_id)

    @service_activity(TenantTask.CLEAR_QUOTAS)
    async def clear_quotas(self, input: TenantOperationInput) -> Changed:
        ensure_tenant(input.tenant_id, "tenant")
        return Changed(changed=await self.store.clear_quotas(input.tenant_id, input.operation_id))

    # tenant_switching -------------------------------------------------------------------

    @service_activity(TenantTask.CHECK_SWITCH_ACCESS)
    async def check_switch_access(self, input: SwitchAccessInput) -> SwitchAccess:
        """The caller's own active membership in an active tenant; anything else is 'not
        found' (a tenant the caller does not belong to does not exist for them)."""
        context = require_context()
        member = await self.store.member(input.tenant_id, context.user_id)
        tenant = await self.store.get_tenant(input.tenant_id)
        if (
            member is None
            or member.status is not MemberStatus.ACTIVE
            or tenant is None
            or tenant.status is not TenantStatus.ACTIVE
        ):
            raise NotFound("tenant")
        return SwitchAccess(tenant_id=input.tenant_id, roles=member.roles)

    @service_activity(TenantTask.SET_CURRENT_TENANT)
    async def set_current_tenant(self, input: SetCurrentTenantInput) -> CurrentTenantSet:
        context = require_context()
        if await self.store.member(input.tenant_id, context.user_id) is None:
            raise NotFound("tenant")
        previous = await self.store.set_current_tenant(
            context.user_id, input.tenant_id, input.operation_id
        )
        await self._pause()
        return CurrentTenantSet(
            user_id=context.user_id, tenant_id=input.tenant_id, previous_tenant_id=previous
        )

    @service_activity(TenantTask.RESTORE_CURRENT_TENANT)
    async def restore_current_tenant(self, input: SetCurrentTenantInput) -> Changed:
        context = require_context()
        return Changed(
            changed=await self.store.restore_current_tenant(context.user_id, input.operation_id)
        )

    @service_activity(TenantTask.LOAD_TENANT_DATA)
    async def load_tenant_data(self, input: LoadTenantDataInput) -> TenantData:
        """Read only: the caller's tenant as a member sees it."""
        context = require_context()
        tenant = await self._tenant(input.tenant_id)
        member = await self.store.member(input.tenant_id, context.user_id)
        if member is None or member.status is not MemberStatus.ACTIVE:
            raise NotFound("tenant")
        return TenantData(
            tenant=tenant,
            plan=tenant.plan,
            member_count=await self.store.member_count(input.tenant_id),
            quotas=tenant.quotas,
            roles=member.roles,
        )

    # tenant_upgrade ---------------------------------------------------------------------

    @service_activity(TenantTask.PREPARE_UPGRADE)
    async def prepare_upgrade(self, input: PrepareUpgradeInput) -> UpgradePlan:
        """Read only: what the change costs and the quotas it brings."""
        tenant = await self._tenant(input.tenant_id)
        if tenant.status is not TenantStatus.ACTIVE:
            raise ServiceError(ErrorKind.CONFLICT, "the tenant is suspended")
        if tenant.plan is input.plan:
            raise ServiceError(ErrorKind.CONFLICT, f"the tenant is already on {input.plan.value}")
        return UpgradePlan(
            tenant_id=tenant.id,
            current_plan=tenant.plan,
            plan=input.plan,
            amount_cents=billing.change_price(tenant.plan, input.plan),
            previous_quotas=tenant.quotas,
            quotas=billing.terms(input.plan).quotas,
        )

    @service_activity(TenantTask.CREATE_INVOICE)
    async def create_invoice(self, input: CreateInvoiceInput) -> Invoice:
        ensure_tenant(input.tenant_id, "tenant")
        invoice = await self.store.create_invoice(
            input.tenant_id, input.operation_id, input.plan, input.previous_plan, input.amount_cents
        )
        await self._pause()
        return invoice

    @service_activity(TenantTask.DELETE_INVOICE)
    async def delete_invoice(self, input: InvoiceInput) -> Changed:
        ensure_tenant(input.tenant_id, "tenant")
        return Changed(changed=await self.store.delete_invoice(input.tenant_id, input.invoice_id))

    @service_activity(TenantTask.CHARGE_INVOICE)
    async def charge_invoice(self, input: InvoiceInput) -> Invoice:
        """The payment (a stand-in provider): marks the invoice paid, once."""
        ensure_tenant(input.tenant_id, "tenant")
        if await self.store.invoice(input.tenant_id, input.invoice_id) is None:
            raise NotFound("invoice")
        await self.store.set_invoice_status(input.tenant_id, input.invoice_id, InvoiceStatus.PAID)
        await self._pause()
        found = await self.store.invoice(input.tenant_id, input.invoice_id)
        assert found is not None
        return found

    @service_activity(TenantTask.REFUND_INVOICE)
    async def refund_invoice(self, input: InvoiceInput) -> Changed:
        """Compensation of charge_invoice: the payment is returned (the invoice is unpaid)."""
        ensure_tenant(input.tenant_id, "tenant")
        changed = await self.store.set_invoice_status(
            input.tenant_id, input.invoice_id, InvoiceStatus.PENDING
        )
        return Changed(changed=changed)

    @service_activity(TenantTask.APPLY_PLAN)
    async def apply_plan(self, input: ApplyPlanInput) -> Tenant:
        await self._tenant(input.tenant_id)
        await self.store.set_plan(input.tenant_id, input.plan, input.quotas, input.operation_id)
        await self._pause()
        return await self._tenant(input.tenant_id)

    @service_activity(TenantTask.RESTORE_PLAN)
    async def restore_plan(self, input: RestorePlanInput) -> Changed:
        """Compensation of apply_plan: only if the plan is still this operation's."""
        await self._tenant(input.tenant_id)
        if await self.store.plan_operation(input.tenant_id) != input.operation_id:
            return Changed(changed=False)
        await self.store.set_plan(input.tenant_id, input.plan, input.quotas, None)
        return Changed(changed=True)

    # tenant_suspension ------------------------------------------------------------------

    @service_activity(TenantTask.SET_TENANT_STATUS)
    async def set_tenant_status(self, input: SetTenantStatusInput) -> Changed:
        context = ensure_tenant(input.tenant_id, "tenant")
        if "owner" not in context.roles:
            raise ServiceError(ErrorKind.AUTHORIZATION, "only the tenant owner can do this")
        await self._tenant(input.tenant_id)
        changed = await self.store.set_status(input.tenant_id, input.status, input.operation_id)
        await self._pause()
        return Changed(changed=changed)

    @service_activity(TenantTask.LIST_MEMBERS)
    async def list_members(self, input: ListMembersInput) -> MemberList:
        await self._tenant(input.tenant_id)
        return MemberList(
            tenant_id=input.tenant_id, members=await self.store.members(input.tenant_id)
        )

    # tenant_membership_sync -------------------------------------------------------------

    @service_activity(TenantTask.READ_MEMBERSHIP)
    async def read_membership(self, input: ReadMembershipInput) -> MemberState:
        """Read only: the row before the change (what the compensation puts back)."""
        self._manager(input.tenant_id)
        await self._tenant(input.tenant_id)
        return MemberState(
            tenant_id=input.tenant_id,
            user_id=input.user_id,
            member=await self.store.member_snapshot(input.tenant_id, input.user_id),
        )

    @service_activity(TenantTask.CHANGE_MEMBERSHIP)
    async def change_membership(self, input: ChangeMembershipInput) -> MembershipChanged:
        """By an owner/admin of the tenant; only an owner adds, changes or removes owners."""
        context = self._manager(input.tenant_id)
        await self._tenant(input.tenant_id)
        if input.change is not MembershipChange.REMOVE and not input.roles:
            raise ServiceError(ErrorKind.VALIDATION, "roles are required")
        if "owner" not in context.roles:
            current = await self.store.member(input.tenant_id, input.user_id)
            if "owner" in input.roles or (current is not None and "owner" in current.roles):
                raise ServiceError(ErrorKind.AUTHORIZATION, "only owners can change owners")
        member, changed = await self.store.change_membership(
            input.tenant_id,
            input.user_id,
            input.change,
            list(dict.fromkeys(input.roles)),
            context.user_id,
            input.operation_id,
        )
        await self._pause()
        return MembershipChanged(
            tenant_id=input.tenant_id,
            user_id=input.user_id,
            change=input.change,
            member=member,
            changed=changed,
        )

    @service_activity(TenantTask.RESTORE_MEMBERSHIP)
    async def restore_membership(self, input: RestoreMembershipInput) -> Changed:
        self._manager(input.tenant_id)
        if input.previous is not None and (
            input.previous.tenant_id != input.tenant_id or input.previous.user_id != input.user_id
        ):
            raise ServiceError(ErrorKind.VALIDATION, "the snapshot is of another membership")
        changed = await self.store.restore_membership(
            input.tenant_id, input.user_id, input.operation_id, input.previous
        )
        return Changed(changed=changed)
