"""The user service on the wire: its activity names and the models of its workflows and
activities.

Other services' workflows (user onboarding, tenant membership sync) call these activities by
name on ``TaskQueue.USER``; BFFs and the gateway start the user workflows with these models.
Evolve compatibly: add optional fields, never rename or remove.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from contracts.activities import ActivityRef
from contracts.names import TaskQueue
from contracts.tenant import UserDataErased, UserDataExport, UserDataRequest


class UserActivity(StrEnum):
    # profiles
    CREATE_PROFILE = "user.create_profile"
    GET_PROFILE = "user.get_profile"
    UPDATE_PROFILE = "user.update_profile"
    RESTORE_PROFILE = "user.restore_profile"
    SYNC_PROFILE_PROJECTIONS = "user.sync_profile_projections"
    DEACTIVATE_PROFILE = "user.deactivate_profile"
    REACTIVATE_PROFILE = "user.reactivate_profile"
    # memberships projection (kept in sync by the tenant service)
    UPSERT_MEMBERSHIP = "user.upsert_membership"
    SUSPEND_MEMBERSHIPS = "user.suspend_memberships"
    RESTORE_MEMBERSHIPS = "user.restore_memberships"
    REMOVE_MEMBERSHIP = "user.remove_membership"  # compensates upsert_membership of a new one
    # tenant_membership_sync (tenant service): read the row first, put it back on failure
    GET_MEMBERSHIP = "user.get_membership"
    RESET_MEMBERSHIP = "user.reset_membership"  # compensates upsert_membership/remove_membership
    # activity log
    RECORD_ACTIVITY = "user.record_activity"
    RECENT_ACTIVITY = "user.recent_activity"
    # notifications and bulk operations
    SEND_ACCOUNT_NOTICE = "user.send_account_notice"
    APPLY_BULK_ITEM = "user.apply_bulk_item"
    # cross-service workflows (user onboarding, compliance export and erasure)
    DELETE_PROFILE = "user.delete_profile"  # compensates create_profile
    INIT_PREFERENCES = "user.init_preferences"
    DISCARD_PREFERENCES = "user.discard_preferences"  # compensates init_preferences
    EXPORT_USER_DATA = "user.export_user_data"
    ERASE_USER_DATA = "user.erase_user_data"


# Roles that may manage other members of their tenant.
ADMIN_ROLES = frozenset({"owner", "admin"})

DEFAULT_GRACE_PERIOD_SECONDS = 7 * 24 * 3600
MAX_GRACE_PERIOD_SECONDS = 90 * 24 * 3600
MAX_BULK_USERS = 1000

UserId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
TenantId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    ),
]
AvatarUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2048, pattern=r"^https?://\S+$")
]
# BCP 47 language tags as browsers send them: en, en-US, pt-BR, zh-Hant-TW.
Locale = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=35, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
    ),
]


@cache
def known_timezones() -> frozenset[str]:
    """The IANA zones this machine knows (the system's database or the tzdata package)."""
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def _known_zone(value: str) -> str:
    if value not in known_timezones():
        raise ValueError("unknown time zone")
    return value


# IANA zone names (Europe/Paris, America/Argentina/Buenos_Aires, UTC) that exist: a model
# holding one is refused at every entry point (HTTP, GraphQL, a workflow's input), never
# inside a workflow that already runs. This module passes through the workflow sandbox, so
# the zones are read from the real files.
Timezone = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        max_length=64,
        pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$",
    ),
    AfterValidator(_known_zone),
]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ClearableField = Literal["avatar_url", "title"]


class UserStatus(StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"


class MembershipStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


# Profiles ---------------------------------------------------------------------------------


class ProfileValues(BaseModel):
    """The editable part of a profile, as a whole (what a compensation puts back)."""

    email: Email
    display_name: DisplayName
    avatar_url: str | None = None
    locale: str = "en"
    timezone: str = "UTC"
    title: str | None = None


class UserProfile(ProfileValues):
    user_id: UserId
    status: UserStatus = UserStatus.ACTIVE
    created_at: datetime
    updated_at: datetime
    deactivated_at: datetime | None = None
    restore_deadline: datetime | None = None
    # Grows by one with every change (optimistic concurrency for user_profile_sync).
    version: int = 1
    # The tenant the profile was read in and the user's roles there (None: read outside one).
    tenant_id: str | None = None
    roles: list[str] = Field(default_factory=list)

    def values(self) -> ProfileValues:
        return ProfileValues.model_validate(
            self.model_dump(include=set(ProfileValues.model_fields))
        )


class ProfileChanges(BaseModel):
    """Fields to change; an absent (None) field stays as it is, ``clear`` empties one."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    email: Email | None = None
    avatar_url: AvatarUrl | None = None
    locale: Locale | None = None
    timezone: Timezone | None = None
    title: Title | None = None
    clear: list[ClearableField] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> ProfileChanges:
        if not self.changed_fields():
            raise ValueError("no field to change")
        both = [name for name in self.clear if getattr(self, name) is not None]
        if both:
            raise ValueError(f"{', '.join(both)} cannot be set and cleared at once")
        return self

    def changed_fields(self) -> list[str]:
        names = [
            name
            for name in ("display_name", "email", "avatar_url", "locale", "timezone", "title")
            if getattr(self, name) is not None
        ]
        return sorted({*names, *self.clear})

    def apply_to(self, values: ProfileValues) -> ProfileValues:
        data = values.model_dump()
        for name in ("display_name", "email", "avatar_url", "locale", "timezone", "title"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        for name in self.clear:
            data[name] = None
        return ProfileValues.model_validate(data)


class CreateProfileInput(BaseModel):
    """Creates the profile of a new user (user onboarding); a second call returns it as is."""

    user_id: UserId
    email: Email
    display_name: DisplayName
    locale: Locale = "en"
    timezone: Timezone = "UTC"
    # The creating workflow: delete_profile removes the profile only for this operation.
    operation_id: str | None = Field(default=None, max_length=255)


class DeleteProfileInput(BaseModel):
    """Compensation of create_profile: deletes the profile only if ``operation_id`` created
    it and nobody changed it since."""

    user_id: UserId
    operation_id: str = Field(min_length=1, max_length=255)


class ProfileDeleted(BaseModel):
    user_id: str
    deleted: bool


class InitPreferencesInput(BaseModel):
    """The new member's workspace in the tenant: the directory membership projection and the
    default preferences, each created if absent (marked with ``operation_id``)."""

    user_id: UserId
    tenant_id: TenantId
    roles: list[Annotated[str, StringConstraints(min_length=1, max_length=50)]] = Field(
        default_factory=lambda: ["member"], max_length=20
    )
    operation_id: str = Field(min_length=1, max_length=255)
    locale: Locale = "en"
    timezone: Timezone = "UTC"


class PreferencesInitialized(BaseModel):
    user_id: str
    tenant_id: str
    document: dict[str, Any]


class DiscardPreferencesInput(BaseModel):
    """Compensation of init_preferences: removes only the rows ``operation_id`` created."""

    user_id: UserId
    tenant_id: TenantId
    operation_id: str = Field(min_length=1, max_length=255)


class PreferencesDiscarded(BaseModel):
    user_id: str
    tenant_id: str
    rows: int


class GetProfileInput(BaseModel):
    user_id: UserId


class UpdateProfileInput(BaseModel):
    user_id: UserId
    changes: ProfileChanges
    # The workflow that changes it: a retry of the same change is recognised by it.
    operation_id: str
    # Applied only if the profile is still at this version (else ConflictError).
    expected_version: int


class RestoreProfileInput(BaseModel):
    """Compensation of update_profile: puts ``values`` back unless someone changed the
    profile after ``operation_id`` did."""

    user_id: UserId
    operation_id: str
    values: ProfileValues


class SyncProfileProjectionsInput(BaseModel):
    user_id: UserId
    email: Email
    display_name: DisplayName


class ProjectionsSynced(BaseModel):
    user_id: str
    tenant_ids: list[str]


class DeactivateProfileInput(BaseModel):
    user_id: UserId
    operation_id: str
    restore_deadline: datetime


class ReactivateProfileInput(BaseModel):
    user_id: UserId
    operation_id: str


class ProfileStatusChanged(BaseModel):
    user_id: str
    status: UserStatus
    # False when the profile already had this status from the same operation (a retry).
    changed: bool


# Memberships ------------------------------------------------------------------------------


class Membership(BaseModel):
    user_id: str
    tenant_id: str
    roles: list[str]
    status: MembershipStatus


class UpsertMembershipInput(BaseModel):
    """Adds the user to the tenant, or sets their roles there (the tenant must be the caller's)."""

    user_id: UserId
    tenant_id: TenantId
    roles: list[Annotated[str, StringConstraints(min_length=1, max_length=50)]] = Field(
        default_factory=lambda: ["member"], max_length=20
    )


class RemoveMembershipInput(BaseModel):
    """Removes the user from the projection of the caller's tenant (idempotent)."""

    user_id: UserId
    tenant_id: TenantId


class GetMembershipInput(BaseModel):
    """One membership row of the caller's tenant, as stored (None when absent)."""

    user_id: UserId
    tenant_id: TenantId


class MembershipSnapshot(BaseModel):
    """What reset_membership puts back (the directory fields follow the profile)."""

    user_id: str
    tenant_id: str
    roles: list[str]
    status: MembershipStatus
    suspended_by: str | None = None
    created_by: str | None = None


class MembershipState(BaseModel):
    user_id: str
    tenant_id: str
    membership: MembershipSnapshot | None = None


class ResetMembershipInput(BaseModel):
    """Puts the row back as ``previous`` was (None: removes it); idempotent."""

    user_id: UserId
    tenant_id: TenantId
    previous: MembershipSnapshot | None = None


class SuspendMembershipsInput(BaseModel):
    user_id: UserId
    # Who suspends (e.g. a workflow id): restore_memberships with the same key undoes exactly
    # these suspensions and no others.
    operation_key: str = Field(min_length=1, max_length=255)
    # False: only the membership in the caller's tenant; True: every tenant (deactivation).
    all_tenants: bool = False


class RestoreMembershipsInput(BaseModel):
    user_id: UserId
    operation_key: str = Field(min_length=1, max_length=255)


class MembershipsChanged(BaseModel):
    user_id: str
    tenant_ids: list[str]


# Activity log -----------------------------------------------------------------------------


class ActivityKind(StrEnum):
    PROFILE_UPDATED = "profile.updated"
    PREFERENCES_UPDATED = "preferences.updated"
    USER_DEACTIVATED = "user.deactivated"
    USER_RESTORED = "user.restored"
    DEACTIVATION_FINALIZED = "user.deactivation_finalized"
    MEMBERSHIP_SUSPENDED = "membership.suspended"
    MEMBERSHIP_RESTORED = "membership.restored"
    LOCALE_CHANGED = "profile.locale_changed"


class RecordActivityInput(BaseModel):
    # Derived from the workflow id, so a retried activity writes the entry once.
    entry_id: str = Field(min_length=1, max_length=255)
    tenant_id: TenantId
    user_id: UserId
    kind: ActivityKind
    summary: str = Field(max_length=300)


class ActivityEntry(BaseModel):
    id: str
    tenant_id: str
    user_id: str
    actor_id: str | None = None
    kind: ActivityKind
    summary: str
    at: datetime


class RecentActivityInput(BaseModel):
    user_id: UserId
    limit: int = Field(default=20, ge=1, le=100)


class RecentActivity(BaseModel):
    user_id: str
    entries: list[ActivityEntry]


# Notifications ----------------------------------------------------------------------------


class AccountNotice(StrEnum):
    DEACTIVATED = "deactivated"
    RESTORED = "restored"


class AccountNoticeInput(BaseModel):
    user_id: UserId
    notice: AccountNotice
    idempotency_key: str = Field(min_length=1, max_length=200)
    restore_deadline: datetime | None = None


class NoticeSent(BaseModel):
    outbox_id: str
    to: str


# Auth (called by name; see AuthActivity.REVOKE_USER_SESSIONS) -----------------------------------


# Workflows --------------------------------------------------------------------------------


class UserProfileSyncInput(BaseModel):
    user_id: UserId
    changes: ProfileChanges


class UserProfileSyncResult(BaseModel):
    profile: UserProfile
    changed: list[str]
    synced_tenants: list[str]


class UserDeactivationInput(BaseModel):
    user_id: UserId
    tenant_id: TenantId
    grace_period_seconds: int = Field(
        default=DEFAULT_GRACE_PERIOD_SECONDS, ge=1, le=MAX_GRACE_PERIOD_SECONDS
    )
    reason: str | None = Field(default=None, max_length=300)


class RestoreUserSignal(BaseModel):
    requested_by: str


class DeactivationOutcome(StrEnum):
    RESTORED = "restored"
    FINALIZED = "finalized"


class UserDeactivationResult(BaseModel):
    user_id: str
    outcome: DeactivationOutcome
    restore_deadline: datetime
    suspended_tenants: list[str]
    restored_by: str | None = None


class BulkAction(StrEnum):
    SUSPEND = "suspend"
    RESTORE = "restore"
    UPDATE_LOCALE = "update_locale"


class BulkUserOperationInput(BaseModel):
    tenant_id: TenantId
    action: BulkAction
    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_BULK_USERS)
    # Required by update_locale.
    locale: Locale | None = None
    # Items processed concurrently.
    batch_size: int = Field(default=25, ge=1, le=100)
    # Per item attempt; a worker lost mid-item is noticed after this long.
    item_timeout_seconds: int = Field(default=30, ge=1, le=600)

    @model_validator(mode="after")
    def _action_arguments(self) -> BulkUserOperationInput:
        if self.action is BulkAction.UPDATE_LOCALE and self.locale is None:
            raise ValueError("update_locale needs a locale")
        # Each user once, in the order given.
        self.user_ids = list(dict.fromkeys(self.user_ids))
        return self


class BulkItemInput(BaseModel):
    # The bulk workflow's id: with the user id, it identifies the item (applied at most once).
    operation_id: str = Field(min_length=1, max_length=255)
    tenant_id: TenantId
    user_id: UserId
    action: BulkAction
    locale: Locale | None = None


class BulkItemApplied(BaseModel):
    user_id: str
    # False when the user was already in the requested state.
    changed: bool


class BulkItemFailure(BaseModel):
    user_id: str
    reason: str


class BulkUserOperationResult(BaseModel):
    action: BulkAction
    total: int
    succeeded: list[str]
    failed: list[BulkItemFailure]


class GetUserProfileInput(BaseModel):
    user_id: UserId


class GetRecentActivityInput(BaseModel):
    user_id: UserId
    limit: int = Field(default=20, ge=1, le=100)


class UserActivities:
    """Typed references to the user service's activities (name, task queue, input, result):
    workflows call them through the step kernel, services.common.steps."""

    APPLY_BULK_ITEM = ActivityRef(
        UserActivity.APPLY_BULK_ITEM, TaskQueue.USER, BulkItemInput, BulkItemApplied
    )
    CREATE_PROFILE = ActivityRef(
        UserActivity.CREATE_PROFILE, TaskQueue.USER, CreateProfileInput, UserProfile
    )
    DEACTIVATE_PROFILE = ActivityRef(
        UserActivity.DEACTIVATE_PROFILE,
        TaskQueue.USER,
        DeactivateProfileInput,
        ProfileStatusChanged,
    )
    DELETE_PROFILE = ActivityRef(
        UserActivity.DELETE_PROFILE, TaskQueue.USER, DeleteProfileInput, ProfileDeleted
    )
    DISCARD_PREFERENCES = ActivityRef(
        UserActivity.DISCARD_PREFERENCES,
        TaskQueue.USER,
        DiscardPreferencesInput,
        PreferencesDiscarded,
    )
    ERASE_USER_DATA = ActivityRef(
        UserActivity.ERASE_USER_DATA, TaskQueue.USER, UserDataRequest, UserDataErased
    )
    EXPORT_USER_DATA = ActivityRef(
        UserActivity.EXPORT_USER_DATA, TaskQueue.USER, UserDataRequest, UserDataExport
    )
    GET_MEMBERSHIP = ActivityRef(
        UserActivity.GET_MEMBERSHIP, TaskQueue.USER, GetMembershipInput, MembershipState
    )
    GET_PROFILE = ActivityRef(
        UserActivity.GET_PROFILE, TaskQueue.USER, GetProfileInput, UserProfile
    )
    INIT_PREFERENCES = ActivityRef(
        UserActivity.INIT_PREFERENCES, TaskQueue.USER, InitPreferencesInput, PreferencesInitialized
    )
    REACTIVATE_PROFILE = ActivityRef(
        UserActivity.REACTIVATE_PROFILE,
        TaskQueue.USER,
        ReactivateProfileInput,
        ProfileStatusChanged,
    )
    RECENT_ACTIVITY = ActivityRef(
        UserActivity.RECENT_ACTIVITY, TaskQueue.USER, RecentActivityInput, RecentActivity
    )
    RECORD_ACTIVITY = ActivityRef(
        UserActivity.RECORD_ACTIVITY, TaskQueue.USER, RecordActivityInput, bool
    )
    REMOVE_MEMBERSHIP = ActivityRef(
        UserActivity.REMOVE_MEMBERSHIP, TaskQueue.USER, RemoveMembershipInput, MembershipsChanged
    )
    RESET_MEMBERSHIP = ActivityRef(
        UserActivity.RESET_MEMBERSHIP, TaskQueue.USER, ResetMembershipInput, MembershipsChanged
    )
    RESTORE_MEMBERSHIPS = ActivityRef(
        UserActivity.RESTORE_MEMBERSHIPS,
        TaskQueue.USER,
        RestoreMembershipsInput,
        MembershipsChanged,
    )
    RESTORE_PROFILE = ActivityRef(
        UserActivity.RESTORE_PROFILE, TaskQueue.USER, RestoreProfileInput, UserProfile
    )
    SEND_ACCOUNT_NOTICE = ActivityRef(
        UserActivity.SEND_ACCOUNT_NOTICE, TaskQueue.USER, AccountNoticeInput, NoticeSent
    )
    SUSPEND_MEMBERSHIPS = ActivityRef(
        UserActivity.SUSPEND_MEMBERSHIPS,
        TaskQueue.USER,
        SuspendMembershipsInput,
        MembershipsChanged,
    )
    SYNC_PROFILE_PROJECTIONS = ActivityRef(
        UserActivity.SYNC_PROFILE_PROJECTIONS,
        TaskQueue.USER,
        SyncProfileProjectionsInput,
        ProjectionsSynced,
    )
    UPDATE_PROFILE = ActivityRef(
        UserActivity.UPDATE_PROFILE, TaskQueue.USER, UpdateProfileInput, UserProfile
    )
    UPSERT_MEMBERSHIP = ActivityRef(
        UserActivity.UPSERT_MEMBERSHIP, TaskQueue.USER, UpsertMembershipInput, Membership
    )
