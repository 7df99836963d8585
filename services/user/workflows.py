"""The user service's workflows: profile sync, deactivation (reversible within a grace
period), bulk operations, and the two read workflows BFFs aggregate.

Activities are called by name on their service's task queue; identities and ids come from
the workflow (``workflow.info().workflow_id``), so every retried activity is idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.auth import (
        AuthActivities,
        GetUserInput,
        RevokeUserSessionsInput,
        SetAccountStatusInput,
    )
    from contracts.auth import UserStatus as AuthUserStatus
    from contracts.context import RequestContext, current_context
    from contracts.errors import ErrorKind, error_kind
    from contracts.names import SignalName, WorkflowType
    from contracts.progress import EventKind
    from contracts.user import (
        ADMIN_ROLES,
        AccountNotice,
        AccountNoticeInput,
        ActivityKind,
        BulkItemFailure,
        BulkItemInput,
        BulkUserOperationInput,
        BulkUserOperationResult,
        DeactivateProfileInput,
        DeactivationOutcome,
        GetProfileInput,
        GetRecentActivityInput,
        GetUserProfileInput,
        ReactivateProfileInput,
        RecentActivity,
        RecentActivityInput,
        RecordActivityInput,
        RestoreMembershipsInput,
        RestoreProfileInput,
        RestoreUserSignal,
        SuspendMembershipsInput,
        SyncProfileProjectionsInput,
        UpdateProfileInput,
        UserActivities,
        UserDeactivationInput,
        UserDeactivationResult,
        UserProfile,
        UserProfileSyncInput,
        UserProfileSyncResult,
    )
    from services.common.progress import ProgressLog
    from services.common.steps import (
        FORWARD,
        ProgressWorkflow,
        Steps,
        caller,
        require_roles,
        root_cause,
    )

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
PINNED = VersioningBehavior.PINNED
AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE

# user_deactivation deactivates the auth account (login refused) instead of only revoking
# the sessions; histories from before take the old branch on replay.
ACCOUNT_STATUS_PATCH = "user_deactivation.account_status"


def _safe_reason(error: BaseException) -> str:
    """What a client may read about a failed item: the taxonomy's safe message."""
    cause = root_cause(error)
    if isinstance(cause, ApplicationError):
        kind = error_kind(cause.type)
        if kind in (ErrorKind.TENANT_ISOLATION, ErrorKind.NOT_FOUND):
            return "user not found"
        if kind is not ErrorKind.INTERNAL:
            return cause.message
    return "internal error"


def _record(
    steps: Steps,
    context: RequestContext,
    entry_id: str,
    user_id: str,
    kind: ActivityKind,
    summary: str,
) -> Awaitable[bool]:
    return steps.call(
        UserActivities.RECORD_ACTIVITY,
        RecordActivityInput(
            entry_id=entry_id,
            tenant_id=context.tenant_id,
            user_id=user_id,
            kind=kind,
            summary=summary,
        ),
    )


# Profile sync -----------------------------------------------------------------------------


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.USER_PROFILE_SYNC.value, versioning_behavior=AUTO_UPGRADE)
class UserProfileSyncWorkflow(ProgressWorkflow):
    """Changes a profile and propagates it to the projections that show it.

    Steps: load the profile (its version), update it (only at that version), sync the
    directory projection in every tenant, record the change in the activity log. A failure
    or cancellation restores the previous profile and re-syncs the projection from it.
    Other services' projections (auth's login email) join once their contracts exist.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog(total=4)

    @workflow.run
    async def run(self, input: UserProfileSyncInput) -> UserProfileSyncResult:
        context = caller()
        operation_id = workflow.info().workflow_id
        steps = Steps(self._progress)
        self._progress.record(EventKind.STARTED)
        changed = input.changes.changed_fields()
        try:
            current = await steps.step(
                "load_profile",
                lambda: steps.read(
                    UserActivities.GET_PROFILE,
                    GetProfileInput(user_id=input.user_id),
                    options=FORWARD,
                ),
            )
            previous = current.values()

            async def undo_update(_: UserProfile) -> None:
                restored = await steps.undo(
                    UserActivities.RESTORE_PROFILE,
                    RestoreProfileInput(
                        user_id=input.user_id, operation_id=operation_id, values=previous
                    ),
                )
                await steps.undo(
                    UserActivities.SYNC_PROFILE_PROJECTIONS,
                    SyncProfileProjectionsInput(
                        user_id=input.user_id,
                        email=restored.email,
                        display_name=restored.display_name,
                    ),
                )

            updated = await steps.step(
                "update_profile",
                lambda: steps.call(
                    UserActivities.UPDATE_PROFILE,
                    UpdateProfileInput(
                        user_id=input.user_id,
                        changes=input.changes,
                        operation_id=operation_id,
                        expected_version=current.version,
                    ),
                ),
                undo_update,
            )
            synced = await steps.step(
                "sync_projections",
                lambda: steps.call(
                    UserActivities.SYNC_PROFILE_PROJECTIONS,
                    SyncProfileProjectionsInput(
                        user_id=input.user_id,
                        email=updated.email,
                        display_name=updated.display_name,
                    ),
                ),
            )
            await steps.step(
                "record_activity",
                lambda: _record(
                    steps,
                    context,
                    f"{operation_id}:profile",
                    input.user_id,
                    ActivityKind.PROFILE_UPDATED,
                    f"profile updated: {', '.join(changed)}",
                ),
                # Logged: the change happened, whatever comes after.
                pivot=True,
            )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
        return UserProfileSyncResult(
            profile=updated, changed=changed, synced_tenants=synced.tenant_ids
        )


# Deactivation -----------------------------------------------------------------------------


# Pinned: its grace period lasts days; it ends on the build it began on.
@workflow.defn(name=WorkflowType.USER_DEACTIVATION.value, versioning_behavior=PINNED)
class UserDeactivationWorkflow(ProgressWorkflow):
    """Deactivates a user, reversibly for a grace period.

    Steps: mark the profile deactivated, suspend every membership, deactivate the account
    (auth service: login refused, every session revoked), email the user, log it; then wait
    for ``restore_user`` until the grace period ends. Restore: reactivate the account, the
    profile and exactly the memberships this deactivation suspended. Timeout: the
    deactivation becomes final (data kept). A failure or cancellation before the end
    compensates in reverse (the account can log in again; revoked sessions stay revoked:
    the user signs in again).
    """

    @workflow.init
    def __init__(self, input: UserDeactivationInput) -> None:
        self._tenant_id = input.tenant_id
        self._progress = ProgressLog(total=6)
        self._restore: RestoreUserSignal | None = None

    @workflow.signal(name=SignalName.RESTORE_USER.value)
    def restore(self, signal: RestoreUserSignal) -> None:
        # Only an admin of the tenant that deactivated may restore (the API checks it too).
        context = current_context()
        if (
            context is None
            or context.tenant_id != self._tenant_id
            or not ADMIN_ROLES.intersection(context.roles)
        ):
            workflow.logger.warning("security.restore_user_rejected: not an admin of the tenant")
            return
        if self._restore is None:
            self._restore = signal
            self._progress.record(EventKind.MESSAGE, "restore_requested", "restore requested")

    @workflow.run
    async def run(self, input: UserDeactivationInput) -> UserDeactivationResult:
        context = caller(input.tenant_id)
        require_roles(context, ADMIN_ROLES, "deactivate users")
        operation_id = workflow.info().workflow_id
        user_id = input.user_id
        restore_deadline = workflow.now() + timedelta(seconds=input.grace_period_seconds)
        steps = Steps(self._progress)
        self._progress.record(EventKind.STARTED)

        def reactivate_profile() -> ReactivateProfileInput:
            return ReactivateProfileInput(user_id=user_id, operation_id=operation_id)

        def restore_memberships() -> RestoreMembershipsInput:
            return RestoreMembershipsInput(user_id=user_id, operation_key=operation_id)

        def activate_account() -> SetAccountStatusInput:
            return SetAccountStatusInput(user_id=user_id, status=AuthUserStatus.ACTIVE)

        async def reactivate_account(owns_account: bool) -> None:
            # Only an account this workflow deactivated: someone else's deactivation stays.
            if owns_account:
                await steps.undo(AuthActivities.SET_ACCOUNT_STATUS, activate_account())

        try:
            await steps.step(
                "deactivate_profile",
                lambda: steps.call(
                    UserActivities.DEACTIVATE_PROFILE,
                    DeactivateProfileInput(
                        user_id=user_id,
                        operation_id=operation_id,
                        restore_deadline=restore_deadline,
                    ),
                ),
                lambda _: steps.undo(UserActivities.REACTIVATE_PROFILE, reactivate_profile()),
            )
            suspended = await steps.step(
                "suspend_memberships",
                lambda: steps.call(
                    UserActivities.SUSPEND_MEMBERSHIPS,
                    SuspendMembershipsInput(
                        user_id=user_id, operation_key=operation_id, all_tenants=True
                    ),
                ),
                lambda _: steps.undo(UserActivities.RESTORE_MEMBERSHIPS, restore_memberships()),
            )
            owns_account = False
            if workflow.patched(ACCOUNT_STATUS_PATCH):
                # The compensation is the step's: registered even when the step completes
                # after a cancel.
                owns_account = await steps.step(
                    "deactivate_account",
                    lambda: self._deactivate_account(steps, user_id),
                    reactivate_account,
                )
            else:
                # Histories recorded before the account step: replayed as they ran.
                await steps.step(
                    "revoke_sessions",
                    lambda: steps.call(
                        AuthActivities.REVOKE_USER_SESSIONS,
                        RevokeUserSessionsInput(user_id=user_id, reason="deactivated"),
                    ),
                )
            await steps.step(
                "notify_user",
                lambda: steps.call(
                    UserActivities.SEND_ACCOUNT_NOTICE,
                    AccountNoticeInput(
                        user_id=user_id,
                        notice=AccountNotice.DEACTIVATED,
                        idempotency_key=f"{operation_id}:deactivated",
                        restore_deadline=restore_deadline,
                    ),
                ),
            )
            await steps.step(
                "record_activity",
                lambda: _record(
                    steps,
                    context,
                    f"{operation_id}:deactivated",
                    user_id,
                    ActivityKind.USER_DEACTIVATED,
                    "account deactivated"
                    + (f": {input.reason}" if input.reason else "")
                    + f"; restorable until {restore_deadline.isoformat()}",
                ),
            )
            self._progress.record(
                EventKind.MESSAGE,
                "grace_period",
                "waiting for a restore request",
                restore_deadline=restore_deadline.isoformat(),
            )
            try:
                await workflow.wait_condition(
                    lambda: self._restore is not None,
                    timeout=max(restore_deadline - workflow.now(), timedelta(milliseconds=1)),
                )
            except TimeoutError:
                # Final: nothing to undo any more if the workflow is cancelled now.
                steps = Steps(self._progress)
                self._progress.set_total(self._progress.progress.completed + 1)
                await steps.step(
                    "finalize",
                    lambda: _record(
                        steps,
                        context,
                        f"{operation_id}:finalized",
                        user_id,
                        ActivityKind.DEACTIVATION_FINALIZED,
                        "deactivation is final (grace period over)",
                    ),
                )
                return UserDeactivationResult(
                    user_id=user_id,
                    outcome=DeactivationOutcome.FINALIZED,
                    restore_deadline=restore_deadline,
                    suspended_tenants=suspended.tenant_ids,
                )
            # Restoring runs the same activities as the compensations, which stay registered:
            # a cancel in the middle of it still completes the restore.
            self._progress.set_total(self._progress.progress.completed + 4 + int(owns_account))
            if owns_account:
                await steps.step(
                    "reactivate_account",
                    lambda: steps.call(AuthActivities.SET_ACCOUNT_STATUS, activate_account()),
                )
            await steps.step(
                "reactivate_profile",
                lambda: steps.call(UserActivities.REACTIVATE_PROFILE, reactivate_profile()),
            )
            await steps.step(
                "restore_memberships",
                lambda: steps.call(UserActivities.RESTORE_MEMBERSHIPS, restore_memberships()),
            )
            await steps.step(
                "notify_restored",
                lambda: steps.call(
                    UserActivities.SEND_ACCOUNT_NOTICE,
                    AccountNoticeInput(
                        user_id=user_id,
                        notice=AccountNotice.RESTORED,
                        idempotency_key=f"{operation_id}:restored",
                    ),
                ),
            )
            restored_by = self._restore.requested_by if self._restore else None
            await steps.step(
                "record_restored",
                lambda: _record(
                    steps,
                    context,
                    f"{operation_id}:restored",
                    user_id,
                    ActivityKind.USER_RESTORED,
                    "account restored",
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
        return UserDeactivationResult(
            user_id=user_id,
            outcome=DeactivationOutcome.RESTORED,
            restore_deadline=restore_deadline,
            suspended_tenants=suspended.tenant_ids,
            restored_by=restored_by,
        )

    @staticmethod
    async def _deactivate_account(steps: Steps, user_id: str) -> bool:
        """Login refused from now on (set_account_status also ends every session). True if
        this workflow deactivated the account, so restore and compensation reactivate it; an
        account deactivated by someone else stays so, and one not activated yet (pending,
        invited) only loses its sessions."""
        # A read, then one forward call whichever the branch: safe under a cancel.
        account = await steps.read(
            AuthActivities.GET_USER, GetUserInput(user_id=user_id), options=FORWARD
        )
        if account.status in (AuthUserStatus.ACTIVE, AuthUserStatus.DEACTIVATED):
            await steps.call(
                AuthActivities.SET_ACCOUNT_STATUS,
                SetAccountStatusInput(user_id=user_id, status=AuthUserStatus.DEACTIVATED),
            )
            return account.status is AuthUserStatus.ACTIVE
        await steps.call(
            AuthActivities.REVOKE_USER_SESSIONS,
            RevokeUserSessionsInput(user_id=user_id, reason="deactivated"),
        )
        return False


# Bulk operations --------------------------------------------------------------------------


# Auto-upgrade: minutes at most; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.BULK_USER_OPERATION.value, versioning_behavior=AUTO_UPGRADE)
class BulkUserOperationWorkflow(ProgressWorkflow):
    """Applies one action to many users of the caller's tenant, ``batch_size`` at a time.

    Every item is an idempotent activity keyed by (workflow id, user id), so a worker lost
    mid-batch changes nothing twice: the replayed workflow re-runs only unfinished items and
    those find their recorded outcome. A failing item is reported (user id + safe reason)
    and the rest go on. Up to 1000 users keep the history at a few thousand events, so the
    workflow does not continue-as-new.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog()
        self._succeeded: list[str] = []
        self._failed: list[BulkItemFailure] = []

    @workflow.run
    async def run(self, input: BulkUserOperationInput) -> BulkUserOperationResult:
        context = caller(input.tenant_id)
        require_roles(context, ADMIN_ROLES, "run bulk operations")
        operation_id = workflow.info().workflow_id
        total = len(input.user_ids)
        # Items report their own progress events; Steps only runs their activities.
        steps = Steps(self._progress)
        self._progress.set_total(total)
        self._progress.record(
            EventKind.STARTED, message=f"{input.action.value} for {total} users", total=total
        )
        for start in range(0, total, input.batch_size):
            batch = input.user_ids[start : start + input.batch_size]
            await asyncio.gather(
                *(self._item(steps, operation_id, input, user_id) for user_id in batch)
            )
        self._progress.record(
            EventKind.MESSAGE,
            "done",
            f"{len(self._succeeded)} succeeded, {len(self._failed)} failed",
            succeeded=len(self._succeeded),
            failed=len(self._failed),
        )
        succeeded = set(self._succeeded)
        failed = {failure.user_id: failure for failure in self._failed}
        # In input order, whatever order the concurrent items finished in.
        return BulkUserOperationResult(
            action=input.action,
            total=total,
            succeeded=[user_id for user_id in input.user_ids if user_id in succeeded],
            failed=[failed[user_id] for user_id in input.user_ids if user_id in failed],
        )

    async def _item(
        self, steps: Steps, operation_id: str, input: BulkUserOperationInput, user_id: str
    ) -> None:
        try:
            await steps.call(
                UserActivities.APPLY_BULK_ITEM,
                BulkItemInput(
                    operation_id=operation_id,
                    tenant_id=input.tenant_id,
                    user_id=user_id,
                    action=input.action,
                    locale=input.locale,
                ),
                options=FORWARD.with_timeout(input.item_timeout_seconds),
            )
        except FailureError as error:
            reason = _safe_reason(error)
            self._failed.append(BulkItemFailure(user_id=user_id, reason=reason))
            # A failed item is processed too: progress counts every item once.
            self._progress.progress.completed += 1
            self._progress.record(
                EventKind.STEP_FAILED,
                f"user:{user_id}",
                reason,
                user_id=user_id,
                succeeded=len(self._succeeded),
                failed=len(self._failed),
            )
            return
        self._succeeded.append(user_id)
        self._progress.record(
            EventKind.STEP_COMPLETED,
            f"user:{user_id}",
            user_id=user_id,
            succeeded=len(self._succeeded),
            failed=len(self._failed),
        )


# Read workflows (BFF aggregation): one local activity each, no side effects ---------------


# Auto-upgrade: one read, milliseconds.
@workflow.defn(name=WorkflowType.GET_USER_PROFILE.value, versioning_behavior=AUTO_UPGRADE)
class GetUserProfileWorkflow(ProgressWorkflow):
    def __init__(self) -> None:
        self._progress = ProgressLog(total=1)

    @workflow.run
    async def run(self, input: GetUserProfileInput) -> UserProfile:
        caller()
        steps = Steps(self._progress)
        self._progress.record(EventKind.STARTED)
        try:
            # A local activity: quick, in this service.
            return await steps.step(
                "read_profile",
                lambda: steps.read(
                    UserActivities.GET_PROFILE, GetProfileInput(user_id=input.user_id), local=True
                ),
            )
        except FailureError as error:
            raise steps.failure(error) from error


# Auto-upgrade: one read, milliseconds.
@workflow.defn(name=WorkflowType.GET_RECENT_ACTIVITY.value, versioning_behavior=AUTO_UPGRADE)
class GetRecentActivityWorkflow(ProgressWorkflow):
    def __init__(self) -> None:
        self._progress = ProgressLog(total=1)

    @workflow.run
    async def run(self, input: GetRecentActivityInput) -> RecentActivity:
        caller()
        steps = Steps(self._progress)
        self._progress.record(EventKind.STARTED)
        try:
            # A local activity, as in GetUserProfileWorkflow.
            return await steps.step(
                "read_activity",
                lambda: steps.read(
                    UserActivities.RECENT_ACTIVITY,
                    RecentActivityInput(user_id=input.user_id, limit=input.limit),
                    local=True,
                ),
            )
        except FailureError as error:
            raise steps.failure(error) from error


WORKFLOWS: list[type[Any]] = [
    UserProfileSyncWorkflow,
    UserDeactivationWorkflow,
    BulkUserOperationWorkflow,
    GetUserProfileWorkflow,
    GetRecentActivityWorkflow,
]
