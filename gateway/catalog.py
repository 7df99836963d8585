"""The workflows clients may start through ``POST /api/workflows/{type}``: their input and
result models, whether the gateway waits for the result (synchronous, within a budget), and
which roles may start them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import BaseModel

from contracts import file, tenant, user, workflow
from contracts.names import WorkflowType


@dataclass(frozen=True)
class CatalogEntry:
    workflow_type: WorkflowType
    input_model: type[BaseModel]
    summary: str
    result_model: type[BaseModel] | None = None
    # Set: the gateway waits up to this long and answers 200 with the result.
    sync_budget: timedelta | None = None
    # Any one of these roles may start it; empty: any authenticated caller.
    roles: frozenset[str] = field(default_factory=frozenset)


ADMINS = frozenset({"owner", "admin"})
OWNERS = frozenset({"owner"})
QUICK = timedelta(seconds=5)

_ENTRIES = [
    # user service
    CatalogEntry(
        WorkflowType.GET_USER_PROFILE,
        user.GetUserProfileInput,
        "a member's profile (read)",
        result_model=user.UserProfile,
        sync_budget=QUICK,
    ),
    CatalogEntry(
        WorkflowType.GET_RECENT_ACTIVITY,
        user.GetRecentActivityInput,
        "a member's recent activity (read)",
        result_model=user.RecentActivity,
        sync_budget=QUICK,
    ),
    CatalogEntry(
        WorkflowType.USER_PROFILE_SYNC,
        user.UserProfileSyncInput,
        "change a profile and sync it to every projection",
        result_model=user.UserProfileSyncResult,
        sync_budget=QUICK,
        roles=ADMINS,
    ),
    CatalogEntry(
        WorkflowType.USER_DEACTIVATION,
        user.UserDeactivationInput,
        "deactivate a user (reversible within the grace period)",
        result_model=user.UserDeactivationResult,
        roles=ADMINS,
    ),
    CatalogEntry(
        WorkflowType.BULK_USER_OPERATION,
        user.BulkUserOperationInput,
        "apply one action to many users",
        result_model=user.BulkUserOperationResult,
        roles=ADMINS,
    ),
    # tenant service
    CatalogEntry(
        WorkflowType.GET_TENANT_DATA,
        tenant.GetTenantDataInput,
        "the tenant's data for the caller (read)",
        result_model=tenant.TenantData,
        sync_budget=QUICK,
    ),
    CatalogEntry(
        WorkflowType.TENANT_PROVISIONING,
        tenant.TenantProvisioningInput,
        "create a tenant owned by the caller",
        result_model=tenant.TenantProvisioningResult,
    ),
    CatalogEntry(
        WorkflowType.TENANT_UPGRADE,
        tenant.TenantUpgradeInput,
        "change the tenant's plan (invoiced)",
        result_model=tenant.TenantUpgradeResult,
        roles=OWNERS,
    ),
    CatalogEntry(
        WorkflowType.TENANT_SUSPENSION,
        tenant.TenantSuspensionInput,
        "suspend the tenant (reversible, data kept)",
        result_model=tenant.TenantSuspensionResult,
        roles=OWNERS,
    ),
    # cross-service workflows
    CatalogEntry(
        WorkflowType.USER_ONBOARDING,
        workflow.UserOnboardingInput,
        "invite a new user into the tenant",
        result_model=workflow.UserOnboardingResult,
        roles=ADMINS,
    ),
    CatalogEntry(
        WorkflowType.COMPLIANCE_EXPORT,
        workflow.ComplianceExportInput,
        "export one user's data from every service",
        result_model=workflow.ComplianceExportResult,
    ),
    CatalogEntry(
        WorkflowType.COMPLIANCE_ERASE,
        workflow.ComplianceEraseInput,
        "erase one user's personal data everywhere (audited)",
        result_model=workflow.ComplianceEraseResult,
    ),
    # file service (uploads go through POST /api/file/uploads: bytes are streamed there)
    CatalogEntry(
        WorkflowType.GET_RECENT_FILES,
        file.RecentFilesInput,
        "the caller's recent files (read)",
        result_model=file.RecentFiles,
        sync_budget=QUICK,
    ),
    CatalogEntry(
        WorkflowType.FILE_SHARING,
        file.FileSharingInput,
        "share a file with a member",
        result_model=file.FileSharingResult,
    ),
]

CATALOG: dict[str, CatalogEntry] = {entry.workflow_type.value: entry for entry in _ENTRIES}
