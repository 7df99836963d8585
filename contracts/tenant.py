"""The tenant service's contract: activity names and the models other services' workflows
(user onboarding, compliance) use. The tenant service adds its own workflows' models here."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, JsonValue, StringConstraints, model_validator

from contracts.activities import ActivityRef
from contracts.names import TaskQueue


class TenantActivity(StrEnum):
    # Called by the cross-service workflows (workflow service) on TaskQueue.TENANT.
    ADD_MEMBER = "tenant.add_member"
    REMOVE_MEMBER = "tenant.remove_member"
    EXPORT_USER_DATA = "tenant.export_user_data"
    ERASE_USER_DATA = "tenant.erase_user_data"


class AddMemberInput(BaseModel):
    """Idempotent: adding an existing member changes nothing (and reports it)."""

    tenant_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=64)
    roles: list[str] = Field(default_factory=lambda: ["member"])
    operation_id: str = Field(min_length=1, max_length=255)


class MemberAdded(BaseModel):
    tenant_id: str
    user_id: str
    roles: list[str]
    created: bool  # False: the membership already existed (the compensation must keep it)


class RemoveMemberInput(BaseModel):
    tenant_id: str
    user_id: str
    operation_id: str


class UserDataRequest(BaseModel):
    """A data-subject request about one user (compliance export and erasure)."""

    user_id: str = Field(min_length=1, max_length=64)
    request_id: str = Field(min_length=1, max_length=255)


class UserDataExport(BaseModel):
    service: str
    user_id: str
    records: dict[str, list[dict[str, JsonValue]]]


class UserDataErased(BaseModel):
    service: str
    user_id: str
    # table -> rows deleted or anonymised
    rows: dict[str, int]


# The tenant service's own activities and workflows ------------------------------------------
# (everything above is relied on by the cross-service workflows: keep it as it is)

DEFAULT_ACTIVITY_TIMEOUT_SECONDS = 30
# The roles every new tenant gets, and the ones that manage it.
DEFAULT_ROLES: dict[str, list[str]] = {
    "owner": ["*"],
    "admin": ["tenant.update", "members.invite", "members.manage", "files.*", "workflows.*"],
    "member": ["tenant.read", "members.read", "files.read", "files.write", "files.share"],
    "viewer": ["tenant.read", "members.read", "files.read"],
}
OWNER_ROLES = ["owner", "admin", "member"]
MANAGER_ROLES = frozenset({"owner", "admin"})

TenantSlug = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=2,
        max_length=64,
        pattern=r"^[a-z][a-z0-9-]*$",
    ),
]
TenantName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
RoleName = Annotated[str, StringConstraints(min_length=1, max_length=50)]


class TenantTask(StrEnum):
    """Activities of the tenant service's own workflows (also on TaskQueue.TENANT)."""

    CREATE_TENANT = "tenant.create_tenant"
    DELETE_TENANT = "tenant.delete_tenant"  # compensates create_tenant
    CREATE_DEFAULT_ROLES = "tenant.create_default_roles"
    DELETE_ROLES = "tenant.delete_roles"  # compensates create_default_roles
    SET_QUOTAS = "tenant.set_quotas"
    CLEAR_QUOTAS = "tenant.clear_quotas"  # compensates set_quotas
    CHECK_SWITCH_ACCESS = "tenant.check_switch_access"
    SET_CURRENT_TENANT = "tenant.set_current_tenant"
    RESTORE_CURRENT_TENANT = "tenant.restore_current_tenant"  # compensates set_current_tenant
    LOAD_TENANT_DATA = "tenant.load_tenant_data"
    PREPARE_UPGRADE = "tenant.prepare_upgrade"
    CREATE_INVOICE = "tenant.create_invoice"
    DELETE_INVOICE = "tenant.delete_invoice"  # compensates create_invoice
    CHARGE_INVOICE = "tenant.charge_invoice"
    REFUND_INVOICE = "tenant.refund_invoice"  # compensates charge_invoice
    APPLY_PLAN = "tenant.apply_plan"
    RESTORE_PLAN = "tenant.restore_plan"  # compensates apply_plan
    SET_TENANT_STATUS = "tenant.set_tenant_status"
    LIST_MEMBERS = "tenant.list_members"
    # tenant_membership_sync
    READ_MEMBERSHIP = "tenant.read_membership"
    CHANGE_MEMBERSHIP = "tenant.change_membership"
    RESTORE_MEMBERSHIP = "tenant.restore_membership"  # compensates change_membership


class MembershipChange(StrEnum):
    ADD = "add"
    SET_ROLES = "set_roles"
    REMOVE = "remove"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class MemberStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Plan(StrEnum):
    FREE = "free"
    PROFESSIONAL = "professional"
    ENTERPRISE = "enterprise"


class InvoiceStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"


class Quotas(BaseModel):
    max_users: int = Field(ge=1)
    storage_bytes: int = Field(ge=0)


class Tenant(BaseModel):
    id: str
    name: str
    plan: Plan
    status: TenantStatus
    settings: dict[str, JsonValue] = Field(default_factory=dict)
    quotas: Quotas | None = None
    created_at: datetime


class TenantMember(BaseModel):
    tenant_id: str
    user_id: str
    roles: list[str]
    status: MemberStatus
    invited_by: str | None = None
    created_at: datetime


class Invoice(BaseModel):
    id: str
    tenant_id: str
    plan: Plan
    previous_plan: Plan
    amount_cents: int
    currency: str = "USD"
    status: InvoiceStatus
    operation_id: str
    created_at: datetime
    paid_at: datetime | None = None


# Steps of the tenant workflows ----------------------------------------------------------------


class CreateTenantInput(BaseModel):
    tenant_id: TenantSlug
    name: TenantName
    plan: Plan
    operation_id: str


class TenantOperationInput(BaseModel):
    """A step acting on one tenant on behalf of one workflow (``operation_id``)."""

    tenant_id: str
    operation_id: str


class Changed(BaseModel):
    changed: bool


class SwitchAccessInput(BaseModel):
    tenant_id: str


class SwitchAccess(BaseModel):
    tenant_id: str
    roles: list[str]


class SetCurrentTenantInput(BaseModel):
    tenant_id: str
    operation_id: str


class CurrentTenantSet(BaseModel):
    user_id: str
    tenant_id: str
    previous_tenant_id: str | None


class LoadTenantDataInput(BaseModel):
    tenant_id: str


class TenantData(BaseModel):
    """What a BFF shows about the caller's tenant (the get_tenant_data read workflow)."""

    tenant: Tenant
    plan: Plan
    member_count: int
    quotas: Quotas | None
    roles: list[str]


class PrepareUpgradeInput(BaseModel):
    tenant_id: str
    plan: Plan


class UpgradePlan(BaseModel):
    tenant_id: str
    current_plan: Plan
    plan: Plan
    amount_cents: int
    previous_quotas: Quotas | None
    quotas: Quotas


class CreateInvoiceInput(BaseModel):
    tenant_id: str
    operation_id: str
    plan: Plan
    previous_plan: Plan
    amount_cents: int = Field(ge=0)


class InvoiceInput(BaseModel):
    tenant_id: str
    invoice_id: str


class ApplyPlanInput(BaseModel):
    tenant_id: str
    operation_id: str
    plan: Plan
    quotas: Quotas


class RestorePlanInput(BaseModel):
    tenant_id: str
    operation_id: str
    plan: Plan
    quotas: Quotas | None


class SetTenantStatusInput(BaseModel):
    tenant_id: str
    status: TenantStatus
    operation_id: str


class MemberSnapshot(BaseModel):
    """A membership row as it is stored (what restore_membership puts back as it was)."""

    tenant_id: str
    user_id: str
    roles: list[str]
    status: MemberStatus
    invited_by: str | None = None
    created_at: datetime
    created_by_operation: str | None = None


class ReadMembershipInput(BaseModel):
    tenant_id: str
    user_id: str


class MemberState(BaseModel):
    tenant_id: str
    user_id: str
    # None: not a member.
    member: MemberSnapshot | None = None


class ChangeMembershipInput(BaseModel):
    """Add (created by ``operation_id``), set the roles of, or remove one membership. A retry
    finds its change made and changes nothing more; the last owner is never demoted or
    removed (ConflictError)."""

    tenant_id: str
    user_id: str
    change: MembershipChange
    roles: list[str] = Field(default_factory=list, max_length=16)
    operation_id: str


class MembershipChanged(BaseModel):
    tenant_id: str
    user_id: str
    change: MembershipChange
    # The membership after the change (None: removed).
    member: TenantMember | None = None
    changed: bool


class RestoreMembershipInput(BaseModel):
    """Compensation of change_membership: puts ``previous`` back (None: removes the row, only
    if ``operation_id`` created it)."""

    tenant_id: str
    user_id: str
    operation_id: str
    previous: MemberSnapshot | None = None


class ListMembersInput(BaseModel):
    tenant_id: str


class MemberList(BaseModel):
    tenant_id: str
    members: list[TenantMember]


# Workflows -------------------------------------------------------------------------------


class TenantProvisioningInput(BaseModel):
    """A new tenant owned by the caller (who becomes its owner)."""

    tenant_id: TenantSlug
    name: TenantName
    plan: Plan = Plan.FREE
    # Per step attempt: a worker lost mid-step is noticed after this long.
    activity_timeout_seconds: int = Field(default=DEFAULT_ACTIVITY_TIMEOUT_SECONDS, ge=1, le=600)


class TenantProvisioningResult(BaseModel):
    tenant: Tenant
    owner_id: str
    roles: list[str]


class TenantSwitchingInput(BaseModel):
    """Moves the caller from ``from_tenant_id`` (their current session's tenant) to
    ``to_tenant_id``; ``user_id`` must be the caller."""

    user_id: str
    from_tenant_id: str
    to_tenant_id: str
    current_session_id: str = Field(min_length=1, max_length=36)
    activity_timeout_seconds: int = Field(default=DEFAULT_ACTIVITY_TIMEOUT_SECONDS, ge=1, le=600)


class TenantSwitchingResult(BaseModel):
    tenant: TenantData
    roles: list[str]
    session_id: str
    # Single use, short-lived: traded for tokens at POST /api/auth/sessions/exchange.
    exchange_code: str


class TenantUpgradeInput(BaseModel):
    tenant_id: str
    plan: Plan
    activity_timeout_seconds: int = Field(default=DEFAULT_ACTIVITY_TIMEOUT_SECONDS, ge=1, le=600)


class TenantUpgradeResult(BaseModel):
    tenant_id: str
    previous_plan: Plan
    plan: Plan
    invoice: Invoice
    quotas: Quotas


class TenantSuspensionInput(BaseModel):
    tenant_id: str
    reason: str | None = Field(default=None, max_length=300)
    # None: suspended until resumed (signal resume_tenant); else resumed after this long.
    resume_after_seconds: int | None = Field(default=None, ge=1, le=365 * 24 * 3600)
    activity_timeout_seconds: int = Field(default=DEFAULT_ACTIVITY_TIMEOUT_SECONDS, ge=1, le=600)


class ResumeTenantSignal(BaseModel):
    requested_by: str


class SuspensionOutcome(StrEnum):
    RESUMED = "resumed"
    RESUMED_AFTER_TIMEOUT = "resumed_after_timeout"


class TenantSuspensionResult(BaseModel):
    tenant_id: str
    outcome: SuspensionOutcome
    suspended_members: list[str]
    resumed_by: str | None = None


class GetTenantDataInput(BaseModel):
    tenant_id: str


class TenantMembershipSyncInput(BaseModel):
    """One membership change in the caller's tenant, carried to the tenant store, the auth
    grants and the user service's membership projection (all three, or none)."""

    tenant_id: str
    user_id: str = Field(min_length=1, max_length=64)
    change: MembershipChange
    # The new roles (add, set_roles); ignored by remove.
    roles: list[RoleName] = Field(default_factory=list, max_length=16)
    activity_timeout_seconds: int = Field(default=DEFAULT_ACTIVITY_TIMEOUT_SECONDS, ge=1, le=600)

    @model_validator(mode="after")
    def _roles_when_needed(self) -> TenantMembershipSyncInput:
        if self.change is not MembershipChange.REMOVE and not self.roles:
            raise ValueError(f"{self.change.value} needs roles")
        return self


class TenantMembershipSyncResult(BaseModel):
    tenant_id: str
    user_id: str
    change: MembershipChange
    # The membership now (None: removed).
    member: TenantMember | None = None
    # The roles before the change (None: was not a member).
    previous_roles: list[str] | None = None


class TenantActivities:
    """Typed references to the tenant service's activities (name, task queue, input, result):
    workflows call them through the step kernel, services.common.steps."""

    ADD_MEMBER = ActivityRef(
        TenantActivity.ADD_MEMBER, TaskQueue.TENANT, AddMemberInput, MemberAdded
    )
    APPLY_PLAN = ActivityRef(TenantTask.APPLY_PLAN, TaskQueue.TENANT, ApplyPlanInput, Tenant)
    CHANGE_MEMBERSHIP = ActivityRef(
        TenantTask.CHANGE_MEMBERSHIP, TaskQueue.TENANT, ChangeMembershipInput, MembershipChanged
    )
    CHARGE_INVOICE = ActivityRef(TenantTask.CHARGE_INVOICE, TaskQueue.TENANT, InvoiceInput, Invoice)
    CHECK_SWITCH_ACCESS = ActivityRef(
        TenantTask.CHECK_SWITCH_ACCESS, TaskQueue.TENANT, SwitchAccessInput, SwitchAccess
    )
    CLEAR_QUOTAS = ActivityRef(
        TenantTask.CLEAR_QUOTAS, TaskQueue.TENANT, TenantOperationInput, Changed
    )
    CREATE_DEFAULT_ROLES = ActivityRef(
        TenantTask.CREATE_DEFAULT_ROLES, TaskQueue.TENANT, TenantOperationInput, list[str]
    )
    CREATE_INVOICE = ActivityRef(
        TenantTask.CREATE_INVOICE, TaskQueue.TENANT, CreateInvoiceInput, Invoice
    )
    CREATE_TENANT = ActivityRef(
        TenantTask.CREATE_TENANT, TaskQueue.TENANT, CreateTenantInput, Tenant
    )
    DELETE_INVOICE = ActivityRef(TenantTask.DELETE_INVOICE, TaskQueue.TENANT, InvoiceInput, Changed)
    DELETE_ROLES = ActivityRef(
        TenantTask.DELETE_ROLES, TaskQueue.TENANT, TenantOperationInput, Changed
    )
    DELETE_TENANT = ActivityRef(
        TenantTask.DELETE_TENANT, TaskQueue.TENANT, TenantOperationInput, Changed
    )
    ERASE_USER_DATA = ActivityRef(
        TenantActivity.ERASE_USER_DATA, TaskQueue.TENANT, UserDataRequest, UserDataErased
    )
    EXPORT_USER_DATA = ActivityRef(
        TenantActivity.EXPORT_USER_DATA, TaskQueue.TENANT, UserDataRequest, UserDataExport
    )
    LIST_MEMBERS = ActivityRef(
        TenantTask.LIST_MEMBERS, TaskQueue.TENANT, ListMembersInput, MemberList
    )
    LOAD_TENANT_DATA = ActivityRef(
        TenantTask.LOAD_TENANT_DATA, TaskQueue.TENANT, LoadTenantDataInput, TenantData
    )
    PREPARE_UPGRADE = ActivityRef(
        TenantTask.PREPARE_UPGRADE, TaskQueue.TENANT, PrepareUpgradeInput, UpgradePlan
    )
    READ_MEMBERSHIP = ActivityRef(
        TenantTask.READ_MEMBERSHIP, TaskQueue.TENANT, ReadMembershipInput, MemberState
    )
    REFUND_INVOICE = ActivityRef(TenantTask.REFUND_INVOICE, TaskQueue.TENANT, InvoiceInput, Changed)
    REMOVE_MEMBER = ActivityRef(
        TenantActivity.REMOVE_MEMBER, TaskQueue.TENANT, RemoveMemberInput, Changed
    )
    RESTORE_CURRENT_TENANT = ActivityRef(
        TenantTask.RESTORE_CURRENT_TENANT, TaskQueue.TENANT, SetCurrentTenantInput, Changed
    )
    RESTORE_MEMBERSHIP = ActivityRef(
        TenantTask.RESTORE_MEMBERSHIP, TaskQueue.TENANT, RestoreMembershipInput, Changed
    )
    RESTORE_PLAN = ActivityRef(TenantTask.RESTORE_PLAN, TaskQueue.TENANT, RestorePlanInput, Changed)
    SET_CURRENT_TENANT = ActivityRef(
        TenantTask.SET_CURRENT_TENANT, TaskQueue.TENANT, SetCurrentTenantInput, CurrentTenantSet
    )
    SET_QUOTAS = ActivityRef(TenantTask.SET_QUOTAS, TaskQueue.TENANT, TenantOperationInput, Tenant)
    SET_TENANT_STATUS = ActivityRef(
        TenantTask.SET_TENANT_STATUS, TaskQueue.TENANT, SetTenantStatusInput, Changed
    )
