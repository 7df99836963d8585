"""The cross-service workflows: user onboarding (a saga over auth, user and tenant), and the
two data-subject requests, compliance export and compliance erase.

Each activity runs on its own service's task queue, called by name; ids derive from the
workflow id, so a retried activity (or a replayed workflow after a worker crash) never repeats
a side effect. Compensations undo only what this operation created.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from contracts.auth import (
        AuthActivity,
        CreateInvitedUserInput,
        DeleteInvitedUserInput,
        GrantTenantAccessInput,
        InvitationSent,
        InvitedUser,
        RevokeTenantAccessInput,
        SendInvitationInput,
        TenantAccessRevoked,
        TenantGrant,
        UserChange,
    )
    from contracts.context import RequestContext, current_context
    from contracts.errors import ErrorKind
    from contracts.names import QueryName, TaskQueue, WorkflowType
    from contracts.progress import EventKind, ProgressReport, ProgressRequest
    from contracts.tenant import AddMemberInput, MemberAdded, RemoveMemberInput, TenantActivity
    from contracts.user import (
        CreateProfileInput,
        DeleteProfileInput,
        DiscardPreferencesInput,
        InitPreferencesInput,
        PreferencesDiscarded,
        PreferencesInitialized,
        ProfileDeleted,
        UserActivity,
        UserProfile,
    )
    from contracts.workflow import (
        AuditRecord,
        ComplianceEraseInput,
        ComplianceEraseResult,
        ComplianceExportInput,
        ComplianceExportResult,
        EraseAuditInput,
        ExportArchive,
        FinishAuditInput,
        StartAuditInput,
        UserDataErased,
        UserDataExport,
        UserDataRequest,
        UserOnboardingInput,
        UserOnboardingResult,
        WorkflowActivity,
        WriteArchiveInput,
    )
    from services.common.progress import ProgressLog
    from services.common.retry import COMPENSATION_RETRY, DEFAULT_RETRY
    from services.common.saga import Saga

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE

T = TypeVar("T")

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Which services hold user data. Erasure order: user first (it refuses a caller who is not
# the user or an admin of one of the user's tenants before anything is erased), the account
# last. The file service has no export/erase activities yet.
EXPORT_SOURCES: tuple[tuple[str, TaskQueue], ...] = (
    (TenantActivity.EXPORT_USER_DATA.value, TaskQueue.TENANT),
    (UserActivity.EXPORT_USER_DATA.value, TaskQueue.USER),
    (AuthActivity.EXPORT_USER_DATA.value, TaskQueue.AUTH),
)
ERASE_TARGETS: tuple[tuple[str, TaskQueue], ...] = (
    (UserActivity.ERASE_USER_DATA.value, TaskQueue.USER),
    (TenantActivity.ERASE_USER_DATA.value, TaskQueue.TENANT),
    (AuthActivity.ERASE_USER_DATA.value, TaskQueue.AUTH),
    (WorkflowActivity.ERASE_USER_DATA.value, TaskQueue.WORKFLOW),
)


async def _call(
    name: str,
    arg: BaseModel,
    result_type: type[T],
    task_queue: TaskQueue,
    *,
    retry_policy: RetryPolicy = DEFAULT_RETRY,
) -> T:
    result: T = await workflow.execute_activity(
        name,
        arg,
        task_queue=task_queue.value,
        start_to_close_timeout=ACTIVITY_TIMEOUT,
        retry_policy=retry_policy,
        result_type=result_type,
    )
    return result


async def _undo(name: str, arg: BaseModel, result_type: type[T], task_queue: TaskQueue) -> T:
    return await _call(name, arg, result_type, task_queue, retry_policy=COMPENSATION_RETRY)


async def _notify(name: str, arg: BaseModel, task_queue: TaskQueue, retry: RetryPolicy) -> Any:
    """An activity whose result (if any) the workflow does not use."""
    return await workflow.execute_activity(
        name,
        arg,
        task_queue=task_queue.value,
        start_to_close_timeout=ACTIVITY_TIMEOUT,
        retry_policy=retry,
    )


class _SagaSteps:
    """Forward steps of a saga that a cancellation cannot overtake.

    With the default cancellation an activity still running when the workflow is cancelled
    may commit after its compensation ran (nothing would undo it). Here the workflow waits for
    the running attempt to end, keeps its result (so the step is compensated like any other),
    and re-raises the cancellation once the step is recorded."""

    def __init__(self, saga: Saga) -> None:
        self.saga = saga
        self._cancelled: asyncio.CancelledError | None = None

    async def call(self, name: str, arg: BaseModel, result_type: type[T], queue: TaskQueue) -> T:
        handle = workflow.start_activity(
            name,
            arg,
            task_queue=queue.value,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DEFAULT_RETRY,
            result_type=result_type,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        try:
            return await asyncio.shield(handle)
        except asyncio.CancelledError as cancelled:
            self._cancelled = cancelled
            handle.cancel()
            try:
                # The attempt's outcome: a late result is compensated like any other.
                late: T = await handle
                return late
            except BaseException:
                raise cancelled from None

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[T]],
        compensation: Callable[[], Awaitable[object]] | None = None,
    ) -> T:
        result = await self.saga.step(name, action, compensation)
        if self._cancelled is not None:
            raise self._cancelled
        return result


def _caller() -> RequestContext:
    context = current_context()
    if context is None:
        raise ApplicationError(
            "no caller identity", type=ErrorKind.AUTHENTICATION.value, non_retryable=True
        )
    return context


# User onboarding ----------------------------------------------------------------------------


ONBOARDING_STEPS = (
    "create_credentials",
    "create_profile",
    "add_tenant_member",
    "grant_tenant_access",
    "init_workspace",
    "send_welcome_email",
)


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.USER_ONBOARDING.value, versioning_behavior=AUTO_UPGRADE)
class UserOnboardingWorkflow:
    """A tenant admin invites a new user: an invited account in auth, a profile in user, the
    membership in tenant, the auth grant for the tenant, the workspace (directory entry and
    default preferences) and the welcome email with a single-use set-password link.

    A failure or a cancellation before the email undoes the completed steps newest first.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog(total=len(ONBOARDING_STEPS))

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

    @workflow.run
    async def run(self, input: UserOnboardingInput) -> UserOnboardingResult:
        context = _caller()
        if input.tenant_id != context.tenant_id:
            # Only the caller's own tenant (the activities check it too).
            raise ApplicationError(
                "tenant not found", type=ErrorKind.TENANT_ISOLATION.value, non_retryable=True
            )
        operation_id = workflow.info().workflow_id
        saga = Saga(self._progress)
        steps = _SagaSteps(saga)
        self._progress.record(EventKind.STARTED)
        member: MemberAdded | None = None
        try:
            invited = await steps.step(
                "create_credentials",
                lambda: steps.call(
                    AuthActivity.CREATE_INVITED_USER,
                    CreateInvitedUserInput(email=input.email, operation_id=operation_id),
                    InvitedUser,
                    TaskQueue.AUTH,
                ),
                lambda: _undo(
                    AuthActivity.DELETE_INVITED_USER,
                    DeleteInvitedUserInput(user_id=invited.user_id, operation_id=operation_id),
                    UserChange,
                    TaskQueue.AUTH,
                ),
            )
            user_id = invited.user_id
            await steps.step(
                "create_profile",
                lambda: steps.call(
                    UserActivity.CREATE_PROFILE,
                    CreateProfileInput(
                        user_id=user_id,
                        email=input.email,
                        display_name=input.display_name,
                        locale=input.locale,
                        timezone=input.timezone,
                        operation_id=operation_id,
                    ),
                    UserProfile,
                    TaskQueue.USER,
                ),
                lambda: _undo(
                    UserActivity.DELETE_PROFILE,
                    DeleteProfileInput(user_id=user_id, operation_id=operation_id),
                    ProfileDeleted,
                    TaskQueue.USER,
                ),
            )

            def added_here() -> bool:
                # An existing membership (another invitation) is not this operation's to
                # undo, and neither is the auth grant that mirrors it.
                return member is not None and member.created

            async def remove_member() -> None:
                if added_here():
                    await _notify(
                        TenantActivity.REMOVE_MEMBER,
                        RemoveMemberInput(
                            tenant_id=input.tenant_id, user_id=user_id, operation_id=operation_id
                        ),
                        TaskQueue.TENANT,
                        COMPENSATION_RETRY,
                    )

            async def revoke_grant() -> None:
                if added_here():
                    await _undo(
                        AuthActivity.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(user_id=user_id, tenant_id=input.tenant_id),
                        TenantAccessRevoked,
                        TaskQueue.AUTH,
                    )

            async def add_member() -> MemberAdded:
                nonlocal member
                member = await steps.call(
                    TenantActivity.ADD_MEMBER,
                    AddMemberInput(
                        tenant_id=input.tenant_id,
                        user_id=user_id,
                        roles=list(input.roles),
                        operation_id=operation_id,
                    ),
                    MemberAdded,
                    TaskQueue.TENANT,
                )
                return member

            await steps.step("add_tenant_member", add_member, remove_member)
            await steps.step(
                "grant_tenant_access",
                lambda: steps.call(
                    AuthActivity.GRANT_TENANT_ACCESS,
                    GrantTenantAccessInput(
                        user_id=user_id, tenant_id=input.tenant_id, roles=list(input.roles)
                    ),
                    TenantGrant,
                    TaskQueue.AUTH,
                ),
                revoke_grant,
            )
            await steps.step(
                "init_workspace",
                lambda: steps.call(
                    UserActivity.INIT_PREFERENCES,
                    InitPreferencesInput(
                        user_id=user_id,
                        tenant_id=input.tenant_id,
                        roles=list(input.roles),
                        operation_id=operation_id,
                        locale=input.locale,
                        timezone=input.timezone,
                    ),
                    PreferencesInitialized,
                    TaskQueue.USER,
                ),
                lambda: _undo(
                    UserActivity.DISCARD_PREFERENCES,
                    DiscardPreferencesInput(
                        user_id=user_id, tenant_id=input.tenant_id, operation_id=operation_id
                    ),
                    PreferencesDiscarded,
                    TaskQueue.USER,
                ),
            )
            expires_at = workflow.now() + timedelta(seconds=input.invitation_expires_in_seconds)
            await steps.step(
                "send_welcome_email",
                lambda: steps.call(
                    AuthActivity.SEND_INVITATION,
                    SendInvitationInput(
                        user_id=user_id,
                        operation_id=operation_id,
                        tenant_name=input.tenant_name or input.tenant_id,
                        display_name=input.display_name,
                        expires_at=expires_at,
                    ),
                    InvitationSent,
                    TaskQueue.AUTH,
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from error
        return UserOnboardingResult(
            user_id=user_id, tenant_id=input.tenant_id, invited=True, steps=list(ONBOARDING_STEPS)
        )


# Compliance export --------------------------------------------------------------------------


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.COMPLIANCE_EXPORT.value, versioning_behavior=AUTO_UPGRADE)
class ComplianceExportWorkflow:
    """Collects one user's data from every service into one zip archive on the workflow
    service's disk, downloadable by that user only. The workflow keeps counts, not data: the
    archive is written by a local activity (its input is not recorded in history)."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=len(EXPORT_SOURCES) + 1)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

    @workflow.run
    async def run(self, input: ComplianceExportInput) -> ComplianceExportResult:
        context = _caller()
        request_id = workflow.info().workflow_id
        request = UserDataRequest(user_id=input.user_id, request_id=request_id)
        self._progress.record(EventKind.STARTED)
        parts: list[UserDataExport] = []
        saga = Saga(self._progress)  # progress events only: an export changes nothing
        for name, queue in EXPORT_SOURCES:
            service = name.split(".", 1)[0]
            part = await saga.step(
                f"export_{service}",
                partial(_call, name, request, UserDataExport, queue),
            )
            parts.append(part)
        archive = await saga.step(
            "write_archive",
            lambda: workflow.execute_local_activity(
                WorkflowActivity.WRITE_EXPORT_ARCHIVE,
                WriteArchiveInput(
                    request_id=request_id,
                    user_id=input.user_id,
                    tenant_id=context.tenant_id,
                    parts=parts,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=DEFAULT_RETRY,
                result_type=ExportArchive,
            ),
        )
        parts.clear()
        return ComplianceExportResult(
            request_id=request_id,
            user_id=input.user_id,
            download_path=f"/api/workflow/exports/{request_id}",
            size_bytes=archive.size_bytes,
            sha256=archive.sha256,
            services=sorted(archive.counts),
            counts=archive.counts,
        )


# Compliance erase ---------------------------------------------------------------------------


# Auto-upgrade: seconds, idempotent steps; a new build replays it.
@workflow.defn(name=WorkflowType.COMPLIANCE_ERASE.value, versioning_behavior=AUTO_UPGRADE)
class ComplianceEraseWorkflow:
    """Erases one user's personal data in every service. The audit record comes first (so an
    erasure is never unrecorded) and survives it: it names the user by a pseudonym only and
    collects each service's counts. Erasure cannot be undone, so there is no compensation: a
    failure leaves the audit record "failed" and the request can be started again (every
    service's erase is idempotent)."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=len(ERASE_TARGETS) + 2)

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)

    @workflow.run
    async def run(self, input: ComplianceEraseInput) -> ComplianceEraseResult:
        context = _caller()
        request_id = workflow.info().workflow_id
        request = UserDataRequest(user_id=input.user_id, request_id=request_id)
        saga = Saga(self._progress)
        self._progress.record(EventKind.STARTED)
        audit = await saga.step(
            "record_audit",
            lambda: _call(
                WorkflowActivity.START_ERASE_AUDIT,
                StartAuditInput(
                    request_id=request_id,
                    user_id=input.user_id,
                    tenant_id=context.tenant_id,
                    reason=input.reason,
                ),
                AuditRecord,
                TaskQueue.WORKFLOW,
            ),
        )
        erased: dict[str, dict[str, int]] = {}
        try:
            for name, queue in ERASE_TARGETS:
                service = name.split(".", 1)[0]
                result = await saga.step(
                    f"erase_{service}",
                    partial(_call, name, request, UserDataErased, queue),
                )
                await _notify(
                    WorkflowActivity.RECORD_ERASE_STEP,
                    EraseAuditInput(request_id=request_id, result=result),
                    TaskQueue.WORKFLOW,
                    DEFAULT_RETRY,
                )
                erased[result.service] = result.rows
        except (asyncio.CancelledError, FailureError):
            await asyncio.shield(
                asyncio.ensure_future(
                    _undo(
                        WorkflowActivity.FINISH_ERASE_AUDIT,
                        FinishAuditInput(request_id=request_id, status="failed"),
                        AuditRecord,
                        TaskQueue.WORKFLOW,
                    )
                )
            )
            raise
        await saga.step(
            "finish_audit",
            lambda: _call(
                WorkflowActivity.FINISH_ERASE_AUDIT,
                FinishAuditInput(request_id=request_id, status="completed"),
                AuditRecord,
                TaskQueue.WORKFLOW,
            ),
        )
        return ComplianceEraseResult(request_id=request_id, subject=audit.subject, services=erased)


WORKFLOWS: list[type] = [UserOnboardingWorkflow, ComplianceExportWorkflow, ComplianceEraseWorkflow]
