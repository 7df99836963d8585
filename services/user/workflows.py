"""The user service's workflows: profile sync, deactivation (reversible within a grace
period), bulk operations, and the two read workflows BFFs aggregate.

Activities are called by name on their service's task queue; identities and ids come from
the workflow (``workflow.info().workflow_id``), so every retried activity is idempotent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from contracts.auth import (
        AccountStatusChange,
        AuthActivity,
        AuthUser,
        GetUserInput,
        RevokedSessions,
        RevokeUserSessionsInput,
        SetAccountStatusInput,
    )
    from contracts.auth import UserStatus as AuthUserStatus
    from contracts.context import RequestContext, current_context
    from contracts.errors import ErrorKind, error_kind
    from contracts.names import QueryName, SignalName, TaskQueue, WorkflowType
    from contracts.progress import EventKind, ProgressReport, ProgressRequest
    from contracts.user import (
        ADMIN_ROLES,
        AccountNotice,
        AccountNoticeInput,
        ActivityKind,
        BulkItemApplied,
        BulkItemFailure,
        BulkItemInput,
        BulkUserOperationInput,
        BulkUserOperationResult,
        DeactivateProfileInput,
        DeactivationOutcome,
        GetProfileInput,
        GetRecentActivityInput,
        GetUserProfileInput,
        MembershipsChanged,
        NoticeSent,
        ProfileStatusChanged,
        ProjectionsSynced,
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
        UserActivity,
        UserDeactivationInput,
        UserDeactivationResult,
        UserProfile,
        UserProfileSyncInput,
        UserProfileSyncResult,
    )
    from services.common.progress import ProgressLog
    from services.common.retry import COMPENSATION_RETRY, DEFAULT_RETRY, NON_RETRYABLE
    from services.common.saga import Saga, root_cause

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
PINNED = VersioningBehavior.PINNED
AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE

T = TypeVar("T")

# user_deactivation deactivates the auth account (login refused) instead of only revoking
# the sessions; histories from before take the old branch on replay.
ACCOUNT_STATUS_PATCH = "user_deactivation.account_status"

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Read workflows answer BFF aggregations: a few quick attempts, then a clear failure.
READ_TIMEOUT = timedelta(seconds=5)
READ_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE,
)


async def _call(
    name: str,
    arg: BaseModel,
    result_type: type[T],
    *,
    retry_policy: RetryPolicy = DEFAULT_RETRY,
    task_queue: TaskQueue = TaskQueue.USER,
    start_to_close: timedelta = ACTIVITY_TIMEOUT,
) -> T:
    result: T = await workflow.execute_activity(
        name,
        arg,
        task_queue=task_queue.value,
        start_to_close_timeout=start_to_close,
        retry_policy=retry_policy,
        result_type=result_type,
    )
    return result


async def _read(name: str, arg: BaseModel, result_type: type[T]) -> T:
    """A read as a local activity: no extra task-queue round trip, nothing in other queues."""
    result: T = await workflow.execute_local_activity(
        name,
        arg,
        start_to_close_timeout=READ_TIMEOUT,
        retry_policy=READ_RETRY,
        result_type=result_type,
    )
    return result


def _caller(tenant_id: str | None = None) -> RequestContext:
    """The identity the workflow was started with; a tenant named in the input must be the
    caller's (an ApplicationError, never a ServiceError: those would fail the task, not the
    workflow)."""
    context = current_context()
    if context is None:
        raise ApplicationError(
            "no caller identity", type=ErrorKind.AUTHENTICATION.value, non_retryable=True
        )
    if tenant_id is not None and tenant_id != context.tenant_id:
        workflow.logger.warning(
            "security.tenant_isolation_violation: workflow input names another tenant"
        )
        raise ApplicationError(
            "not found", type=ErrorKind.TENANT_ISOLATION.value, non_retryable=True
        )
    return context


def _require_admin(context: RequestContext, what: str) -> None:
    if not ADMIN_ROLES.intersection(context.roles):
        raise ApplicationError(
            f"only tenant admins can {what}",
            type=ErrorKind.AUTHORIZATION.value,
            non_retryable=True,
        )


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
    context: RequestContext, entry_id: str, user_id: str, kind: ActivityKind, summary: str
) -> Awaitable[bool]:
    return _call(
        UserActivity.RECORD_ACTIVITY,
        RecordActivityInput(
            entry_id=entry_id,
            tenant_id=context.tenant_id,
            user_id=user_id,
            kind=kind,
            summary=summary,
        ),
        bool,
    )


# Profile sync -----------------------------------------------------------------------------


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.USER_PROFILE_SYNC.value, versioning_behavior=AUTO_UPGRADE)
class UserProfileSyncWorkflow:
    """Changes a profile and propagates it to the projections that show it.

    Steps: load the profile (its version), update it (only at that version), sync the
    directory projection in every tenant, record the change in the activity log. A failure
    or cancellation restores the previous profile and re-syncs the projection from it.
    Other services' projections (auth's login email) join once their contracts exist.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog(total=4)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

    @workflow.run
    async def run(self, input: UserProfileSyncInput) -> UserProfileSyncResult:
        context = _caller()
        operation_id = workflow.info().workflow_id
        saga = Saga(self._progress)
        self._progress.record(EventKind.STARTED)
        changed = input.changes.changed_fields()
        try:
            current = await saga.step(
                "load_profile",
                lambda: _call(
                    UserActivity.GET_PROFILE, GetProfileInput(user_id=input.user_id), UserProfile
                ),
            )
            previous = current.values()

            async def undo_update() -> None:
                restored = await _call(
                    UserActivity.RESTORE_PROFILE,
                    RestoreProfileInput(
                        user_id=input.user_id, operation_id=operation_id, values=previous
                    ),
                    UserProfile,
                    retry_policy=COMPENSATION_RETRY,
                )
                await _call(
                    UserActivity.SYNC_PROFILE_PROJECTIONS,
                    SyncProfileProjectionsInput(
                        user_id=input.user_id,
                        email=restored.email,
                        display_name=restored.display_name,
                    ),
                    ProjectionsSynced,
                    retry_policy=COMPENSATION_RETRY,
                )

            updated = await saga.step(
                "update_profile",
                lambda: _call(
                    UserActivity.UPDATE_PROFILE,
                    UpdateProfileInput(
                        user_id=input.user_id,
                        changes=input.changes,
                        operation_id=operation_id,
                        expected_version=current.version,
                    ),
                    UserProfile,
                ),
                undo_update,
            )
            synced = await saga.step(
                "sync_projections",
                lambda: _call(
                    UserActivity.SYNC_PROFILE_PROJECTIONS,
                    SyncProfileProjectionsInput(
                        user_id=input.user_id,
                        email=updated.email,
                        display_name=updated.display_name,
                    ),
                    ProjectionsSynced,
                ),
            )
            await saga.step(
                "record_activity",
                lambda: _record(
                    context,
                    f"{operation_id}:profile",
                    input.user_id,
                    ActivityKind.PROFILE_UPDATED,
                    f"profile updated: {', '.join(changed)}",
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from error
        return UserProfileSyncResult(
            profile=updated, changed=changed, synced_tenants=synced.tenant_ids
        )


# Deactivation -----------------------------------------------------------------------------


# Pinned: its grace period lasts days; it ends on the build it began on.
@workflow.defn(name=WorkflowType.USER_DEACTIVATION.value, versioning_behavior=PINNED)
class UserDeactivationWorkflow:
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

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

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
        context = _caller(input.tenant_id)
        _require_admin(context, "deactivate users")
        operation_id = workflow.info().workflow_id
        user_id = input.user_id
        restore_deadline = workflow.now() + timedelta(seconds=input.grace_period_seconds)
        saga = Saga(self._progress)
        self._progress.record(EventKind.STARTED)
        try:
            await saga.step(
                "deactivate_profile",
                lambda: _call(
                    UserActivity.DEACTIVATE_PROFILE,
                    DeactivateProfileInput(
                        user_id=user_id,
                        operation_id=operation_id,
                        restore_deadline=restore_deadline,
                    ),
                    ProfileStatusChanged,
                ),
                lambda: self._reactivate(user_id, operation_id, COMPENSATION_RETRY),
            )
            suspended = await saga.step(
                "suspend_memberships",
                lambda: _call(
                    UserActivity.SUSPEND_MEMBERSHIPS,
                    SuspendMembershipsInput(
                        user_id=user_id, operation_key=operation_id, all_tenants=True
                    ),
                    MembershipsChanged,
                ),
                lambda: self._restore_memberships(user_id, operation_id, COMPENSATION_RETRY),
            )
            owns_account = False
            if workflow.patched(ACCOUNT_STATUS_PATCH):
                owns_account = await saga.step(
                    "deactivate_account", lambda: self._deactivate_account(user_id)
                )
                if owns_account:
                    saga.add_compensation(
                        "deactivate_account",
                        lambda: self._set_account_status(
                            user_id, AuthUserStatus.ACTIVE, COMPENSATION_RETRY
                        ),
                    )
            else:
                # Histories recorded before the account step: replayed as they ran.
                await saga.step(
                    "revoke_sessions",
                    lambda: workflow.execute_activity(
                        AuthActivity.REVOKE_USER_SESSIONS,
                        RevokeUserSessionsInput(user_id=user_id, reason="deactivated"),
                        task_queue=TaskQueue.AUTH.value,
                        start_to_close_timeout=ACTIVITY_TIMEOUT,
                        retry_policy=DEFAULT_RETRY,
                    ),
                )
            await saga.step(
                "notify_user",
                lambda: _call(
                    UserActivity.SEND_ACCOUNT_NOTICE,
                    AccountNoticeInput(
                        user_id=user_id,
                        notice=AccountNotice.DEACTIVATED,
                        idempotency_key=f"{operation_id}:deactivated",
                        restore_deadline=restore_deadline,
                    ),
                    NoticeSent,
                ),
            )
            await saga.step(
                "record_activity",
                lambda: _record(
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
                saga = Saga(self._progress)
                self._progress.set_total(self._progress.progress.completed + 1)
                await saga.step(
                    "finalize",
                    lambda: _record(
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
                await saga.step(
                    "reactivate_account",
                    lambda: self._set_account_status(user_id, AuthUserStatus.ACTIVE, DEFAULT_RETRY),
                )
            await saga.step(
                "reactivate_profile",
                lambda: self._reactivate(user_id, operation_id, DEFAULT_RETRY),
            )
            await saga.step(
                "restore_memberships",
                lambda: self._restore_memberships(user_id, operation_id, DEFAULT_RETRY),
            )
            await saga.step(
                "notify_restored",
                lambda: _call(
                    UserActivity.SEND_ACCOUNT_NOTICE,
                    AccountNoticeInput(
                        user_id=user_id,
                        notice=AccountNotice.RESTORED,
                        idempotency_key=f"{operation_id}:restored",
                    ),
                    NoticeSent,
                ),
            )
            restored_by = self._restore.requested_by if self._restore else None
            await saga.step(
                "record_restored",
                lambda: _record(
                    context,
                    f"{operation_id}:restored",
                    user_id,
                    ActivityKind.USER_RESTORED,
                    "account restored",
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from error
        return UserDeactivationResult(
            user_id=user_id,
            outcome=DeactivationOutcome.RESTORED,
            restore_deadline=restore_deadline,
            suspended_tenants=suspended.tenant_ids,
            restored_by=restored_by,
        )

    @staticmethod
    def _reactivate(
        user_id: str, operation_id: str, retry_policy: RetryPolicy
    ) -> Awaitable[ProfileStatusChanged]:
        return _call(
            UserActivity.REACTIVATE_PROFILE,
            ReactivateProfileInput(user_id=user_id, operation_id=operation_id),
            ProfileStatusChanged,
            retry_policy=retry_policy,
        )

    @classmethod
    async def _deactivate_account(cls, user_id: str) -> bool:
        """Login refused from now on (set_account_status also ends every session). True if
        this workflow deactivated the account, so restore and compensation reactivate it; an
        account deactivated by someone else stays so, and one not activated yet (pending,
        invited) only loses its sessions."""
        account = await _call(
            AuthActivity.GET_USER,
            GetUserInput(user_id=user_id),
            AuthUser,
            task_queue=TaskQueue.AUTH,
        )
        if account.status in (AuthUserStatus.ACTIVE, AuthUserStatus.DEACTIVATED):
            await cls._set_account_status(user_id, AuthUserStatus.DEACTIVATED, DEFAULT_RETRY)
            return account.status is AuthUserStatus.ACTIVE
        await _call(
            AuthActivity.REVOKE_USER_SESSIONS,
            RevokeUserSessionsInput(user_id=user_id, reason="deactivated"),
            RevokedSessions,
            task_queue=TaskQueue.AUTH,
        )
        return False

    @staticmethod
    def _set_account_status(
        user_id: str, status: AuthUserStatus, retry_policy: RetryPolicy
    ) -> Awaitable[AccountStatusChange]:
        return _call(
            AuthActivity.SET_ACCOUNT_STATUS,
            SetAccountStatusInput(user_id=user_id, status=status),
            AccountStatusChange,
            retry_policy=retry_policy,
            task_queue=TaskQueue.AUTH,
        )

    @staticmethod
    def _restore_memberships(
        user_id: str, operation_id: str, retry_policy: RetryPolicy
    ) -> Awaitable[MembershipsChanged]:
        return _call(
            UserActivity.RESTORE_MEMBERSHIPS,
            RestoreMembershipsInput(user_id=user_id, operation_key=operation_id),
            MembershipsChanged,
            retry_policy=retry_policy,
        )


# Bulk operations --------------------------------------------------------------------------


# Auto-upgrade: minutes at most; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.BULK_USER_OPERATION.value, versioning_behavior=AUTO_UPGRADE)
class BulkUserOperationWorkflow:
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

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

    @workflow.run
    async def run(self, input: BulkUserOperationInput) -> BulkUserOperationResult:
        context = _caller(input.tenant_id)
        _require_admin(context, "run bulk operations")
        operation_id = workflow.info().workflow_id
        total = len(input.user_ids)
        self._progress.set_total(total)
        self._progress.record(
            EventKind.STARTED, message=f"{input.action.value} for {total} users", total=total
        )
        for start in range(0, total, input.batch_size):
            batch = input.user_ids[start : start + input.batch_size]
            await asyncio.gather(*(self._item(operation_id, input, user_id) for user_id in batch))
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

    async def _item(self, operation_id: str, input: BulkUserOperationInput, user_id: str) -> None:
        try:
            await _call(
                UserActivity.APPLY_BULK_ITEM,
                BulkItemInput(
                    operation_id=operation_id,
                    tenant_id=input.tenant_id,
                    user_id=user_id,
                    action=input.action,
                    locale=input.locale,
                ),
                BulkItemApplied,
                start_to_close=timedelta(seconds=input.item_timeout_seconds),
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


async def _read_step(progress: ProgressLog, step: str, read: Awaitable[T]) -> T:
    saga = Saga(progress)
    progress.record(EventKind.STARTED)

    async def action() -> T:
        return await read

    try:
        return await saga.step(step, action)
    except FailureError as error:
        raise saga.failure(error) from error


# Auto-upgrade: one read, milliseconds.
@workflow.defn(name=WorkflowType.GET_USER_PROFILE.value, versioning_behavior=AUTO_UPGRADE)
class GetUserProfileWorkflow:
    def __init__(self) -> None:
        self._progress = ProgressLog(total=1)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

    @workflow.run
    async def run(self, input: GetUserProfileInput) -> UserProfile:
        _caller()
        return await _read_step(
            self._progress,
            "read_profile",
            _read(UserActivity.GET_PROFILE, GetProfileInput(user_id=input.user_id), UserProfile),
        )


# Auto-upgrade: one read, milliseconds.
@workflow.defn(name=WorkflowType.GET_RECENT_ACTIVITY.value, versioning_behavior=AUTO_UPGRADE)
class GetRecentActivityWorkflow:
    def __init__(self) -> None:
        self._progress = ProgressLog(total=1)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

    @workflow.run
    async def run(self, input: GetRecentActivityInput) -> RecentActivity:
        _caller()
        return await _read_step(
            self._progress,
            "read_activity",
            _read(
                UserActivity.RECENT_ACTIVITY,
                RecentActivityInput(user_id=input.user_id, limit=input.limit),
                RecentActivity,
            ),
        )


WORKFLOWS: list[type[Any]] = [
    UserProfileSyncWorkflow,
    UserDeactivationWorkflow,
    BulkUserOperationWorkflow,
    GetUserProfileWorkflow,
    GetRecentActivityWorkflow,
]
