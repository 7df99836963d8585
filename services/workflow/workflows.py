"""The cross-service workflows: user onboarding (a saga over auth, user and tenant), and the
two data-subject requests, compliance export and compliance erase.

Each activity runs on its own service's task queue, called by name; ids derive from the
workflow id, so a retried activity (or a replayed workflow after a worker crash) never repeats
a side effect. Compensations undo only what this operation created.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.activities import ActivityRef
    from contracts.auth import (
        AuthActivities,
        ConsumeReauthenticationInput,
        CreateInvitedUserInput,
        DeleteInvitedUserInput,
        GrantTenantAccessInput,
        RevokeTenantAccessInput,
        SendInvitationInput,
        TenantGrant,
    )
    from contracts.names import WorkflowType
    from contracts.progress import EventKind
    from contracts.tenant import (
        AddMemberInput,
        MemberAdded,
        RemoveMemberInput,
        TenantActivities,
        UserDataErased,
        UserDataExport,
        UserDataRequest,
    )
    from contracts.user import (
        CreateProfileInput,
        DeleteProfileInput,
        DiscardPreferencesInput,
        InitPreferencesInput,
        UserActivities,
    )
    from contracts.workflow import (
        ComplianceEraseInput,
        ComplianceEraseResult,
        ComplianceExportInput,
        ComplianceExportResult,
        EraseAuditInput,
        FinishAuditInput,
        StartAuditInput,
        UserOnboardingInput,
        UserOnboardingResult,
        WorkflowActivities,
        WriteArchiveInput,
    )
    from services.common.progress import ProgressLog
    from services.common.steps import FORWARD, ProgressWorkflow, Steps, caller

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE

# Which services hold user data. Erasure order: user first (it refuses a caller who is not
# the user or an admin of one of the user's tenants before anything is erased), the account
# last. The file service has no export/erase activities yet.
EXPORT_SOURCES: tuple[ActivityRef[UserDataRequest, UserDataExport], ...] = (
    TenantActivities.EXPORT_USER_DATA,
    UserActivities.EXPORT_USER_DATA,
    AuthActivities.EXPORT_USER_DATA,
)
ERASE_TARGETS: tuple[ActivityRef[UserDataRequest, UserDataErased], ...] = (
    UserActivities.ERASE_USER_DATA,
    TenantActivities.ERASE_USER_DATA,
    AuthActivities.ERASE_USER_DATA,
    WorkflowActivities.ERASE_USER_DATA,
)
# One's own erasure takes the account last: until then the user can still log in, give the
# password again and make an interrupted erasure again, which completes it; the account's
# erasure is its point of no return.
OWN_ERASE_TARGETS = (*ERASE_TARGETS[:2], ERASE_TARGETS[3], ERASE_TARGETS[2])


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
class UserOnboardingWorkflow(ProgressWorkflow):
    """A tenant admin invites a new user: an invited account in auth, a profile in user, the
    membership in tenant, the auth grant for the tenant, the workspace (directory entry and
    default preferences) and the welcome email with a single-use set-password link.

    A failure or a cancellation before the email undoes the completed steps newest first.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog(total=len(ONBOARDING_STEPS))

    @workflow.run
    async def run(self, input: UserOnboardingInput) -> UserOnboardingResult:
        # Only the caller's own tenant (the activities check it too).
        caller(input.tenant_id)
        operation_id = workflow.info().workflow_id
        steps = Steps(self._progress)
        self._progress.record(EventKind.STARTED)
        try:
            invited = await steps.step(
                "create_credentials",
                lambda: steps.call(
                    AuthActivities.CREATE_INVITED_USER,
                    CreateInvitedUserInput(email=input.email, operation_id=operation_id),
                ),
                lambda invited: steps.undo(
                    AuthActivities.DELETE_INVITED_USER,
                    DeleteInvitedUserInput(user_id=invited.user_id, operation_id=operation_id),
                ),
            )
            user_id = invited.user_id
            await steps.step(
                "create_profile",
                lambda: steps.call(
                    UserActivities.CREATE_PROFILE,
                    CreateProfileInput(
                        user_id=user_id,
                        email=input.email,
                        display_name=input.display_name,
                        locale=input.locale,
                        timezone=input.timezone,
                        operation_id=operation_id,
                    ),
                ),
                lambda _: steps.undo(
                    UserActivities.DELETE_PROFILE,
                    DeleteProfileInput(user_id=user_id, operation_id=operation_id),
                ),
            )

            async def remove_member(member: MemberAdded) -> None:
                # An existing membership (another invitation) is not this operation's to undo.
                if member.created:
                    await steps.undo(
                        TenantActivities.REMOVE_MEMBER,
                        RemoveMemberInput(
                            tenant_id=input.tenant_id, user_id=user_id, operation_id=operation_id
                        ),
                    )

            member = await steps.step(
                "add_tenant_member",
                lambda: steps.call(
                    TenantActivities.ADD_MEMBER,
                    AddMemberInput(
                        tenant_id=input.tenant_id,
                        user_id=user_id,
                        roles=list(input.roles),
                        operation_id=operation_id,
                    ),
                ),
                remove_member,
            )

            async def revoke_grant(_: TenantGrant) -> None:
                # The grant mirrors the membership: only a membership made here is undone.
                if member.created:
                    await steps.undo(
                        AuthActivities.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(user_id=user_id, tenant_id=input.tenant_id),
                    )

            await steps.step(
                "grant_tenant_access",
                lambda: steps.call(
                    AuthActivities.GRANT_TENANT_ACCESS,
                    GrantTenantAccessInput(
                        user_id=user_id, tenant_id=input.tenant_id, roles=list(input.roles)
                    ),
                ),
                revoke_grant,
            )
            await steps.step(
                "init_workspace",
                lambda: steps.call(
                    UserActivities.INIT_PREFERENCES,
                    InitPreferencesInput(
                        user_id=user_id,
                        tenant_id=input.tenant_id,
                        roles=list(input.roles),
                        operation_id=operation_id,
                        locale=input.locale,
                        timezone=input.timezone,
                    ),
                ),
                lambda _: steps.undo(
                    UserActivities.DISCARD_PREFERENCES,
                    DiscardPreferencesInput(
                        user_id=user_id, tenant_id=input.tenant_id, operation_id=operation_id
                    ),
                ),
            )
            expires_at = workflow.now() + timedelta(seconds=input.invitation_expires_in_seconds)
            await steps.step(
                "send_welcome_email",
                lambda: steps.call(
                    AuthActivities.SEND_INVITATION,
                    SendInvitationInput(
                        user_id=user_id,
                        operation_id=operation_id,
                        tenant_name=input.tenant_name or input.tenant_id,
                        display_name=input.display_name,
                        expires_at=expires_at,
                    ),
                ),
                # Once the invitation is out, the user exists for good.
                pivot=True,
            )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
        return UserOnboardingResult(
            user_id=user_id, tenant_id=input.tenant_id, invited=True, steps=list(ONBOARDING_STEPS)
        )


# Compliance export --------------------------------------------------------------------------


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.COMPLIANCE_EXPORT.value, versioning_behavior=AUTO_UPGRADE)
class ComplianceExportWorkflow(ProgressWorkflow):
    """Collects one user's data from every service into one zip archive on the workflow
    service's disk, downloadable by that user only. The workflow keeps counts, not data: the
    archive is written by a local activity (its input is not recorded in history)."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=len(EXPORT_SOURCES) + 1)

    @workflow.run
    async def run(self, input: ComplianceExportInput) -> ComplianceExportResult:
        context = caller()
        request_id = workflow.info().workflow_id
        request = UserDataRequest(user_id=input.user_id, request_id=request_id)
        self._progress.record(EventKind.STARTED)
        parts: list[UserDataExport] = []
        steps = Steps(self._progress)  # progress events only: an export changes nothing
        for source in EXPORT_SOURCES:
            part = await steps.step(
                f"export_{source.service}",
                partial(steps.read, source, request, options=FORWARD),
            )
            parts.append(part)
        archive = await steps.step(
            "write_archive",
            lambda: steps.call(
                WorkflowActivities.WRITE_EXPORT_ARCHIVE,
                WriteArchiveInput(
                    request_id=request_id,
                    user_id=input.user_id,
                    tenant_id=context.tenant_id,
                    parts=parts,
                ),
                local=True,
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


# The erasure of one's own data starts by spending a fresh proof of the password.
REAUTHENTICATION_PATCH = "compliance-erase-reauthentication"


# Auto-upgrade: seconds, idempotent steps; a new build replays it.
@workflow.defn(name=WorkflowType.COMPLIANCE_ERASE.value, versioning_behavior=AUTO_UPGRADE)
class ComplianceEraseWorkflow(ProgressWorkflow):
    """Erases one user's personal data in every service. The audit record comes first (so an
    erasure is never unrecorded) and survives it: it names the user by a pseudonym only and
    collects each service's counts. Erasure cannot be undone, so there is no compensation: a
    failure leaves the audit record "failed" and the request can be started again (every
    service's erase is idempotent)."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=len(ERASE_TARGETS) + 2)

    @workflow.run
    async def run(self, input: ComplianceEraseInput) -> ComplianceEraseResult:
        context = caller()
        request_id = workflow.info().workflow_id
        request = UserDataRequest(user_id=input.user_id, request_id=request_id)
        steps = Steps(self._progress)
        self._progress.record(EventKind.STARTED)
        erased: dict[str, dict[str, int]] = {}
        # Patched in: runs from before replay without the step.
        reauthenticating = input.user_id == context.user_id and workflow.patched(
            REAUTHENTICATION_PATCH
        )
        if reauthenticating:
            self._progress.set_total(len(ERASE_TARGETS) + 3)
        try:
            if reauthenticating:
                # One's own erasure (all of one's data, the account too) needs the password
                # given again just now: a stolen session alone cannot erase an account.
                await steps.step(
                    "confirm_identity",
                    lambda: steps.call(
                        AuthActivities.CONSUME_REAUTHENTICATION,
                        ConsumeReauthenticationInput(
                            reauthentication=input.reauthentication or "none"
                        ),
                    ),
                )
            audit = await steps.step(
                "record_audit",
                lambda: steps.call(
                    WorkflowActivities.START_ERASE_AUDIT,
                    StartAuditInput(
                        request_id=request_id,
                        user_id=input.user_id,
                        tenant_id=context.tenant_id,
                        reason=input.reason,
                    ),
                ),
                # A request that ends without completing is recorded "failed" (never left
                # "running"), the record written as a cancel came included.
                lambda _: steps.undo(
                    WorkflowActivities.FINISH_ERASE_AUDIT,
                    FinishAuditInput(request_id=request_id, status="failed"),
                ),
            )
            for target in OWN_ERASE_TARGETS if reauthenticating else ERASE_TARGETS:
                result = await steps.step(
                    f"erase_{target.service}",
                    partial(steps.call, target, request),
                    # Once the account is gone the user cannot ask again: from then on the
                    # request completes (a cancel is dropped, a failure retried).
                    pivot=reauthenticating and target is OWN_ERASE_TARGETS[-1],
                )
                await steps.call(
                    WorkflowActivities.RECORD_ERASE_STEP,
                    EraseAuditInput(request_id=request_id, result=result),
                )
                erased[result.service] = result.rows
            # Every service erased: the request is done and recorded "completed", whatever a
            # cancel says now (the record never says completed of a cancelled request).
            steps.irrevocable()
            await steps.step(
                "finish_audit",
                lambda: steps.call(
                    WorkflowActivities.FINISH_ERASE_AUDIT,
                    FinishAuditInput(request_id=request_id, status="completed"),
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
        return ComplianceEraseResult(request_id=request_id, subject=audit.subject, services=erased)


WORKFLOWS: list[type] = [UserOnboardingWorkflow, ComplianceExportWorkflow, ComplianceEraseWorkflow]
