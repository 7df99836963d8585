"""The workflows clients may start through ``POST /api/workflows/{type}``: their input and
result models, whether the gateway waits for the result (synchronous, within a budget), and
which roles may start them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import BaseModel

from contracts import user
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
]

CATALOG: dict[str, CatalogEntry] = {entry.workflow_type.value: entry for entry in _ENTRIES}
