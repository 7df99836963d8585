"""The user service's activities (worker mode).

Each one is idempotent (a retry never repeats a side effect: ids come from the calling
workflow, writes are insert-if-absent or guarded updates) and checks tenant isolation against
the caller identity the workflow propagated: a profile is visible in a tenant only through a
membership there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from adx.settings import Settings
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.user import (
    ADMIN_ROLES,
    AccountNotice,
    AccountNoticeInput,
    ActivityEntry,
    BulkItemApplied,
    BulkItemInput,
    CreateProfileInput,
    DeactivateProfileInput,
    DeleteProfileInput,
    DiscardPreferencesInput,
    GetMembershipInput,
    GetProfileInput,
    InitPreferencesInput,
    Membership,
    MembershipsChanged,
    MembershipState,
    MembershipStatus,
    NoticeSent,
    PreferencesDiscarded,
    PreferencesInitialized,
    ProfileDeleted,
    ProfileStatusChanged,
    ProjectionsSynced,
    ReactivateProfileInput,
    RecentActivity,
    RecentActivityInput,
    RecordActivityInput,
    RemoveMembershipInput,
    ResetMembershipInput,
    RestoreMembershipsInput,
    RestoreProfileInput,
    SuspendMembershipsInput,
    SyncProfileProjectionsInput,
    UpdateProfileInput,
    UpsertMembershipInput,
    UserActivity,
    UserProfile,
    UserStatus,
)
from contracts.workflow import UserDataErased, UserDataExport, UserDataRequest
from services.common.activity import service_activity
from services.common.email import EmailOutbox, OutgoingEmail
from services.common.errors import (
    NotFound,
    ServiceError,
    data_subject_here,
    ensure_tenant,
    require_context,
)
from services.user.models import MembershipRow
from services.user.store import UserStore, email_outbox


def is_admin(context: RequestContext) -> bool:
    return bool(ADMIN_ROLES.intersection(context.roles))


class UserActivities:
    def __init__(
        self, store: UserStore, settings: Settings, *, bulk_item_delay_seconds: float = 0.0
    ) -> None:
        self.store = store
        self.settings = settings
        self.outbox = EmailOutbox(store.db, email_outbox, settings)
        # Test-only: holds each bulk item open after it committed, so a test can kill the
        # worker between "applied" and "reported to Temporal".
        self.bulk_item_delay_seconds = bulk_item_delay_seconds

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.create_profile,
            self.get_profile,
            self.update_profile,
            self.restore_profile,
            self.sync_profile_projections,
            self.deactivate_profile,
            self.reactivate_profile,
            self.upsert_membership,
            self.suspend_memberships,
            self.restore_memberships,
            self.remove_membership,
            self.get_membership,
            self.reset_membership,
            self.record_activity,
            self.recent_activity,
            self.send_account_notice,
            self.apply_bulk_item,
            self.delete_profile,
            self.init_preferences,
            self.discard_preferences,
            self.export_user_data,
            self.erase_user_data,
        ]

    # Isolation ------------------------------------------------------------------------

    async def _member(
        self, user_id: str, *, active_only: bool = True
    ) -> tuple[RequestContext, MembershipRow]:
        """The user's membership in the caller's tenant, or a not-found error. A user who
        exists only in other tenants is an isolation violation (logged as a security event)."""
        context = require_context()
        membership = await self.store.membership(user_id, context.tenant_id)
        if membership is None:
            if await self.store.get_profile(user_id) is None:
                raise NotFound("user")
            ensure_tenant(None, "user")
            raise NotFound("user")  # not reached: ensure_tenant raised
        if active_only and membership.status is not MembershipStatus.ACTIVE:
            raise NotFound("user")
        return context, membership

    async def _profile_in_tenant(self, membership: MembershipRow) -> UserProfile:
        profile = await self.store.get_profile(membership.user_id)
        if profile is None:
            raise NotFound("user")
        return profile.model_copy(
            update={"tenant_id": membership.tenant_id, "roles": list(membership.roles)}
        )

    # Profiles -------------------------------------------------------------------------

    @service_activity(UserActivity.CREATE_PROFILE)
    async def create_profile(self, input: CreateProfileInput) -> UserProfile:
        """A new user's profile; it becomes visible in a tenant with upsert_membership."""
        require_context()
        profile, _created = await self.store.create_profile(
            input.user_id,
            input.email,
            input.display_name,
            input.locale,
            input.timezone,
            operation_id=input.operation_id,
        )
        if profile.email != input.email:
            raise ServiceError(ErrorKind.CONFLICT, "the user already exists with another email")
        return profile

    @service_activity(UserActivity.GET_PROFILE)
    async def get_profile(self, input: GetProfileInput) -> UserProfile:
        """Read only: the profile as the caller's tenant sees it."""
        _context, membership = await self._member(input.user_id)
        return await self._profile_in_tenant(membership)

    @service_activity(UserActivity.UPDATE_PROFILE)
    async def update_profile(self, input: UpdateProfileInput) -> UserProfile:
        context, membership = await self._member(input.user_id)
        if context.user_id != input.user_id and not is_admin(context):
            raise ServiceError(ErrorKind.AUTHORIZATION, "you may not change this profile")
        current = await self._profile_in_tenant(membership)
        values = input.changes.apply_to(current.values())
        updated = await self.store.update_profile(
            input.user_id,
            values,
            expected_version=input.expected_version,
            operation_id=input.operation_id,
        )
        return updated.model_copy(
            update={"tenant_id": membership.tenant_id, "roles": list(membership.roles)}
        )

    @service_activity(UserActivity.RESTORE_PROFILE)
    async def restore_profile(self, input: RestoreProfileInput) -> UserProfile:
        """Compensation: returns the profile as it is afterwards (restored, or left alone
        because someone changed it since)."""
        _context, membership = await self._member(input.user_id, active_only=False)
        await self.store.restore_profile(input.user_id, input.values, input.operation_id)
        return await self._profile_in_tenant(membership)

    @service_activity(UserActivity.SYNC_PROFILE_PROJECTIONS)
    async def sync_profile_projections(
        self, input: SyncProfileProjectionsInput
    ) -> ProjectionsSynced:
        await self._member(input.user_id, active_only=False)
        tenants = await self.store.sync_projections(input.user_id, input.email, input.display_name)
        return ProjectionsSynced(user_id=input.user_id, tenant_ids=tenants)

    @service_activity(UserActivity.DEACTIVATE_PROFILE)
    async def deactivate_profile(self, input: DeactivateProfileInput) -> ProfileStatusChanged:
        # Any status: a retry finds the membership already suspended by this deactivation.
        context, _membership = await self._member(input.user_id, active_only=False)
        if not is_admin(context):
            raise ServiceError(ErrorKind.AUTHORIZATION, "only tenant admins can deactivate users")
        changed = await self.store.deactivate_profile(
            input.user_id, input.operation_id, input.restore_deadline
        )
        return ProfileStatusChanged(
            user_id=input.user_id, status=UserStatus.DEACTIVATED, changed=changed
        )

    @service_activity(UserActivity.REACTIVATE_PROFILE)
    async def reactivate_profile(self, input: ReactivateProfileInput) -> ProfileStatusChanged:
        await self._member(input.user_id, active_only=False)
        changed = await self.store.reactivate_profile(input.user_id, input.operation_id)
        return ProfileStatusChanged(
            user_id=input.user_id, status=UserStatus.ACTIVE, changed=changed
        )

    # Memberships ----------------------------------------------------------------------

    @service_activity(UserActivity.UPSERT_MEMBERSHIP)
    async def upsert_membership(self, input: UpsertMembershipInput) -> Membership:
        ensure_tenant(input.tenant_id, "membership")
        row = await self.store.upsert_membership(input.user_id, input.tenant_id, input.roles)
        return Membership.model_validate(row.model_dump(include=set(Membership.model_fields)))

    @service_activity(UserActivity.SUSPEND_MEMBERSHIPS)
    async def suspend_memberships(self, input: SuspendMembershipsInput) -> MembershipsChanged:
        context, _membership = await self._member(input.user_id, active_only=False)
        scope = None if input.all_tenants else context.tenant_id
        tenants = await self.store.suspend_memberships(input.user_id, input.operation_key, scope)
        return MembershipsChanged(user_id=input.user_id, tenant_ids=tenants)

    @service_activity(UserActivity.RESTORE_MEMBERSHIPS)
    async def restore_memberships(self, input: RestoreMembershipsInput) -> MembershipsChanged:
        await self._member(input.user_id, active_only=False)
        tenants = await self.store.restore_memberships(input.user_id, input.operation_key)
        return MembershipsChanged(user_id=input.user_id, tenant_ids=tenants)

    @service_activity(UserActivity.REMOVE_MEMBERSHIP)
    async def remove_membership(self, input: RemoveMembershipInput) -> MembershipsChanged:
        """The tenant service's compensation of a new membership (and member removal)."""
        ensure_tenant(input.tenant_id, "membership")
        removed = await self.store.remove_membership(input.user_id, input.tenant_id)
        return MembershipsChanged(
            user_id=input.user_id, tenant_ids=[input.tenant_id] if removed else []
        )

    @service_activity(UserActivity.GET_MEMBERSHIP)
    async def get_membership(self, input: GetMembershipInput) -> MembershipState:
        """Read only: the row as stored in the caller's tenant (tenant_membership_sync reads
        it before changing it)."""
        ensure_tenant(input.tenant_id, "membership")
        return MembershipState(
            user_id=input.user_id,
            tenant_id=input.tenant_id,
            membership=await self.store.membership_snapshot(input.user_id, input.tenant_id),
        )

    @service_activity(UserActivity.RESET_MEMBERSHIP)
    async def reset_membership(self, input: ResetMembershipInput) -> MembershipsChanged:
        """Compensation of upsert_membership/remove_membership in tenant_membership_sync."""
        ensure_tenant(input.tenant_id, "membership")
        previous = input.previous
        if previous is not None and (
            previous.user_id != input.user_id or previous.tenant_id != input.tenant_id
        ):
            raise ServiceError(ErrorKind.VALIDATION, "the snapshot is of another membership")
        changed = await self.store.reset_membership(input.user_id, input.tenant_id, previous)
        return MembershipsChanged(
            user_id=input.user_id, tenant_ids=[input.tenant_id] if changed else []
        )

    # Activity log ---------------------------------------------------------------------

    @service_activity(UserActivity.RECORD_ACTIVITY)
    async def record_activity(self, input: RecordActivityInput) -> bool:
        """Writes the entry once (by its id); False if a retry found it written."""
        context = ensure_tenant(input.tenant_id, "activity log")
        await self._member(input.user_id, active_only=False)
        return await self.store.record_activity(
            ActivityEntry(
                id=input.entry_id,
                tenant_id=input.tenant_id,
                user_id=input.user_id,
                actor_id=context.user_id,
                kind=input.kind,
                summary=input.summary,
                at=datetime.now(UTC),
            )
        )

    @service_activity(UserActivity.RECENT_ACTIVITY)
    async def recent_activity(self, input: RecentActivityInput) -> RecentActivity:
        """Read only: the user's recent activity in the caller's tenant (their own, or any
        member's for tenant admins)."""
        context, membership = await self._member(input.user_id, active_only=False)
        if context.user_id != input.user_id and not is_admin(context):
            raise ServiceError(ErrorKind.AUTHORIZATION, "you may not read this activity")
        entries = await self.store.recent_activity(membership.tenant_id, input.user_id, input.limit)
        return RecentActivity(user_id=input.user_id, entries=entries)

    # Notifications --------------------------------------------------------------------

    @service_activity(UserActivity.SEND_ACCOUNT_NOTICE)
    async def send_account_notice(self, input: AccountNoticeInput) -> NoticeSent:
        """One email per idempotency key, whatever the retries."""
        _context, membership = await self._member(input.user_id, active_only=False)
        profile = await self._profile_in_tenant(membership)
        base = self.settings.public_url or self.settings.url("gateway")
        if input.notice is AccountNotice.DEACTIVATED:
            deadline = (
                input.restore_deadline.strftime("%Y-%m-%d %H:%M UTC")
                if input.restore_deadline
                else "the end of the grace period"
            )
            subject = "Your ADX Core account has been deactivated"
            body = (
                f"Hello {profile.display_name},\n\n"
                "An administrator deactivated your ADX Core account and signed you out "
                "everywhere.\n"
                f"It can be restored until {deadline}; ask your administrator if this is a "
                "mistake.\n"
            )
        else:
            subject = "Your ADX Core account has been restored"
            body = (
                f"Hello {profile.display_name},\n\n"
                f"Your ADX Core account is active again. Sign in at {base}\n"
            )
        entry = await self.outbox.deliver(
            OutgoingEmail(
                idempotency_key=input.idempotency_key,
                to=profile.email,
                subject=subject,
                body=body,
            )
        )
        return NoticeSent(outbox_id=entry.id, to=entry.to)

    # Bulk operations ------------------------------------------------------------------

    @service_activity(UserActivity.APPLY_BULK_ITEM)
    async def apply_bulk_item(self, input: BulkItemInput) -> BulkItemApplied:
        """One user of a bulk operation, applied at most once per (operation, user)."""
        context = ensure_tenant(input.tenant_id, "bulk operation")
        if not is_admin(context):
            raise ServiceError(ErrorKind.AUTHORIZATION, "only tenant admins can do this")
        await self._member(input.user_id, active_only=False)
        applied = await self.store.apply_bulk_item(input, context.user_id)
        if self.bulk_item_delay_seconds:
            await asyncio.sleep(self.bulk_item_delay_seconds)
        return applied

    # User onboarding ------------------------------------------------------------------

    @service_activity(UserActivity.DELETE_PROFILE)
    async def delete_profile(self, input: DeleteProfileInput) -> ProfileDeleted:
        """Compensation of create_profile: only a profile this operation created, unchanged
        and in no tenant (a profile someone else uses is never deleted)."""
        require_context()
        deleted = await self.store.delete_created_profile(input.user_id, input.operation_id)
        return ProfileDeleted(user_id=input.user_id, deleted=deleted)

    @service_activity(UserActivity.INIT_PREFERENCES)
    async def init_preferences(self, input: InitPreferencesInput) -> PreferencesInitialized:
        context = ensure_tenant(input.tenant_id, "membership")
        if not is_admin(context):
            raise ServiceError(ErrorKind.AUTHORIZATION, "only tenant admins can add members")
        document = {
            "locale": input.locale,
            "timezone": input.timezone,
            "theme": "system",
            "notifications": {"email": True},
        }
        stored = await self.store.init_preferences(
            input.user_id, input.tenant_id, list(input.roles), document, input.operation_id
        )
        return PreferencesInitialized(
            user_id=input.user_id, tenant_id=input.tenant_id, document=stored
        )

    @service_activity(UserActivity.DISCARD_PREFERENCES)
    async def discard_preferences(self, input: DiscardPreferencesInput) -> PreferencesDiscarded:
        ensure_tenant(input.tenant_id, "membership")
        rows = await self.store.discard_preferences(
            input.user_id, input.tenant_id, input.operation_id
        )
        return PreferencesDiscarded(user_id=input.user_id, tenant_id=input.tenant_id, rows=rows)

    # Data-subject requests ------------------------------------------------------------

    async def _data_subject(self, user_id: str, *, erasing: bool = False) -> str | None:
        async def outside_tenant() -> bool:
            tenant_id = require_context().tenant_id
            return (
                await self.store.membership(user_id, tenant_id) is None
                and await self.store.get_profile(user_id) is not None
            )

        return await data_subject_here(user_id, erasing=erasing, outside_tenant=outside_tenant)

    @service_activity(UserActivity.EXPORT_USER_DATA)
    async def export_user_data(self, input: UserDataRequest) -> UserDataExport:
        scope = await self._data_subject(input.user_id)
        records = await self.store.export_user_data(input.user_id, scope)
        return UserDataExport(service="user", user_id=input.user_id, records=records)

    @service_activity(UserActivity.ERASE_USER_DATA)
    async def erase_user_data(self, input: UserDataRequest) -> UserDataErased:
        scope = await self._data_subject(input.user_id, erasing=True)
        rows = await self.store.erase_user_data(input.user_id, scope)
        return UserDataErased(service="user", user_id=input.user_id, rows=rows)
