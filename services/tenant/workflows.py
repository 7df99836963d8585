"""The tenant service's workflows: provisioning, switching, upgrade and suspension (sagas),
and the get_tenant_data read workflow BFFs aggregate.

Activities are called by name on their service's task queue. Ids come from the workflow
(``workflow.info().workflow_id``, ``workflow.uuid4()``), so every retried activity is
idempotent. Steps that act in another tenant than the caller's session (the new tenant of
provisioning, the target of a switch) run with the caller's identity in that tenant, once
the workflow has established the caller's right to it (they own the new tenant; they are an
active member of the target).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from contracts.auth import (
        AuthActivity,
        CreatedSession,
        CreateSessionInput,
        CredentialsCheck,
        GrantStatus,
        GrantTenantAccessInput,
        RevokeTenantAccessInput,
        SessionChange,
        SessionInput,
        TenantAccessRevoked,
        TenantGrant,
        ValidateCredentialsInput,
    )
    from contracts.context import RequestContext, current_context, use_context
    from contracts.errors import ErrorKind
    from contracts.names import QueryName, SignalName, TaskQueue, WorkflowType
    from contracts.progress import EventKind, ProgressReport, ProgressRequest
    from contracts.tenant import (
        MANAGER_ROLES,
        OWNER_ROLES,
        AddMemberInput,
        ApplyPlanInput,
        Changed,
        ChangeMembershipInput,
        CreateInvoiceInput,
        CreateTenantInput,
        CurrentTenantSet,
        GetTenantDataInput,
        Invoice,
        InvoiceInput,
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
        ResumeTenantSignal,
        SetCurrentTenantInput,
        SetTenantStatusInput,
        SuspensionOutcome,
        SwitchAccess,
        SwitchAccessInput,
        Tenant,
        TenantActivity,
        TenantData,
        TenantMembershipSyncInput,
        TenantMembershipSyncResult,
        TenantOperationInput,
        TenantProvisioningInput,
        TenantProvisioningResult,
        TenantStatus,
        TenantSuspensionInput,
        TenantSuspensionResult,
        TenantSwitchingInput,
        TenantSwitchingResult,
        TenantTask,
        TenantUpgradeInput,
        TenantUpgradeResult,
        UpgradePlan,
    )
    from contracts.user import (
        GetMembershipInput,
        Membership,
        MembershipsChanged,
        MembershipState,
        RemoveMembershipInput,
        ResetMembershipInput,
        UserActivity,
    )
    from contracts.user import UpsertMembershipInput as UserMembershipInput
    from services.common.progress import ProgressLog
    from services.common.retry import COMPENSATION_RETRY, DEFAULT_RETRY, NON_RETRYABLE
    from services.common.saga import Saga

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
PINNED = VersioningBehavior.PINNED
AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE

T = TypeVar("T")

READ_TIMEOUT = timedelta(seconds=5)
READ_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE,
)


class _Calls:
    """Activity calls of one workflow run, with its per-attempt timeout."""

    def __init__(self, timeout_seconds: int) -> None:
        self.timeout = timedelta(seconds=timeout_seconds)

    async def __call__(
        self,
        name: str,
        arg: BaseModel,
        result_type: type[T],
        *,
        queue: TaskQueue = TaskQueue.TENANT,
        compensation: bool = False,
        context: RequestContext | None = None,
    ) -> T:
        """One activity; with ``context`` it runs with that identity (a tenant the workflow
        has established the caller's right to)."""
        with use_context(context or current_context()):
            result: T = await workflow.execute_activity(
                name,
                arg,
                task_queue=queue.value,
                start_to_close_timeout=self.timeout,
                retry_policy=COMPENSATION_RETRY if compensation else DEFAULT_RETRY,
                result_type=result_type,
            )
        return result


def _caller(tenant_id: str | None = None) -> RequestContext:
    """The identity the workflow was started with; a tenant named in the input must be the
    caller's (an ApplicationError: a ServiceError would fail the task, not the workflow)."""
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
            "tenant not found", type=ErrorKind.TENANT_ISOLATION.value, non_retryable=True
        )
    return context


def _require(context: RequestContext, roles: frozenset[str], what: str) -> None:
    if not roles.intersection(context.roles):
        raise ApplicationError(
            f"only {' or '.join(sorted(roles))}s can {what}",
            type=ErrorKind.AUTHORIZATION.value,
            non_retryable=True,
        )


def _compensation(action: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await action()

    return run


class _ProgressQuery:
    _progress: ProgressLog

    @workflow.query(name=QueryName.PROGRESS.value)
    def progress(self, request: ProgressRequest) -> ProgressReport:
        return self._progress.report(request)


# Provisioning --------------------------------------------------------------------------


# Auto-upgrade: done in seconds; changes are patched (tests/replay).
@workflow.defn(name=WorkflowType.TENANT_PROVISIONING.value, versioning_behavior=AUTO_UPGRADE)
class TenantProvisioningWorkflow(_ProgressQuery):
    """A new tenant owned by the caller.

    Steps: create the tenant, its default roles, its quotas (from the plan), the owner's
    membership, the owner's access grant (auth service), the owner in the user service's
    membership projection. A failure or cancellation removes what the completed steps made,
    newest first.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog(total=6)

    @workflow.run
    async def run(self, input: TenantProvisioningInput) -> TenantProvisioningResult:
        caller = _caller()
        operation_id = workflow.info().workflow_id
        call = _Calls(input.activity_timeout_seconds)
        tenant_id = input.tenant_id
        # The caller owns the tenant being created: its steps act as its owner.
        owner = RequestContext(
            user_id=caller.user_id,
            tenant_id=tenant_id,
            roles=tuple(OWNER_ROLES),
            correlation_id=caller.correlation_id,
        )
        op = TenantOperationInput(tenant_id=tenant_id, operation_id=operation_id)
        saga = Saga(self._progress)
        self._progress.record(EventKind.STARTED, message=f"provisioning {tenant_id}")
        try:
            await saga.step(
                "create_tenant",
                lambda: call(
                    TenantTask.CREATE_TENANT,
                    CreateTenantInput(
                        tenant_id=tenant_id,
                        name=input.name,
                        plan=input.plan,
                        operation_id=operation_id,
                    ),
                    Tenant,
                    context=owner,
                ),
                _compensation(
                    lambda: call(
                        TenantTask.DELETE_TENANT, op, Changed, compensation=True, context=owner
                    )
                ),
            )
            await saga.step(
                "create_default_roles",
                lambda: call(TenantTask.CREATE_DEFAULT_ROLES, op, list[str], context=owner),
                _compensation(
                    lambda: call(
                        TenantTask.DELETE_ROLES, op, Changed, compensation=True, context=owner
                    )
                ),
            )
            tenant = await saga.step(
                "set_quotas",
                lambda: call(TenantTask.SET_QUOTAS, op, Tenant, context=owner),
                _compensation(
                    lambda: call(
                        TenantTask.CLEAR_QUOTAS, op, Changed, compensation=True, context=owner
                    )
                ),
            )
            await saga.step(
                "add_owner_membership",
                lambda: call(
                    TenantActivity.ADD_MEMBER,
                    AddMemberInput(
                        tenant_id=tenant_id,
                        user_id=caller.user_id,
                        roles=list(OWNER_ROLES),
                        operation_id=operation_id,
                    ),
                    MemberAdded,
                    context=owner,
                ),
                _compensation(
                    lambda: call(
                        TenantActivity.REMOVE_MEMBER,
                        RemoveMemberInput(
                            tenant_id=tenant_id, user_id=caller.user_id, operation_id=operation_id
                        ),
                        Changed,
                        compensation=True,
                        context=owner,
                    )
                ),
            )
            await saga.step(
                "grant_owner_access",
                lambda: call(
                    AuthActivity.GRANT_TENANT_ACCESS,
                    GrantTenantAccessInput(
                        user_id=caller.user_id, tenant_id=tenant_id, roles=list(OWNER_ROLES)
                    ),
                    TenantGrant,
                    queue=TaskQueue.AUTH,
                    context=owner,
                ),
                _compensation(
                    lambda: call(
                        AuthActivity.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(user_id=caller.user_id, tenant_id=tenant_id),
                        TenantAccessRevoked,
                        queue=TaskQueue.AUTH,
                        compensation=True,
                        context=owner,
                    )
                ),
            )
            await saga.step(
                "sync_user_projection",
                lambda: call(
                    UserActivity.UPSERT_MEMBERSHIP,
                    UserMembershipInput(
                        user_id=caller.user_id, tenant_id=tenant_id, roles=list(OWNER_ROLES)
                    ),
                    Membership,
                    queue=TaskQueue.USER,
                    context=owner,
                ),
                _compensation(
                    lambda: call(
                        UserActivity.REMOVE_MEMBERSHIP,
                        RemoveMembershipInput(user_id=caller.user_id, tenant_id=tenant_id),
                        MembershipsChanged,
                        queue=TaskQueue.USER,
                        compensation=True,
                        context=owner,
                    )
                ),
            )
            # Patched in (CONTRIBUTING.md, "Changing a workflow safely"): runs started before
            # it replay without the step (tests/histories/tenant_provisioning/
            # success-v1-before-patch.json). The audit reads the new tenant back as its owner,
            # so a tenant its owner cannot open fails (and is undone) instead of being reported.
            if workflow.patched("tenant-provisioning-audit-v2"):
                self._progress.set_total(7)
                await saga.step(
                    "audit_provisioning",
                    lambda: call(
                        TenantTask.LOAD_TENANT_DATA,
                        LoadTenantDataInput(tenant_id=tenant_id),
                        TenantData,
                        context=owner,
                    ),
                )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from error
        return TenantProvisioningResult(
            tenant=tenant, owner_id=caller.user_id, roles=list(OWNER_ROLES)
        )


# Switching -----------------------------------------------------------------------------


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.TENANT_SWITCHING.value, versioning_behavior=AUTO_UPGRADE)
class TenantSwitchingWorkflow(_ProgressQuery):
    """Moves the caller to another tenant of theirs (seed 002's steps).

    Steps: validate access (active membership in the target, then the auth service's check
    of the account, the current session and the target grant), capture the current session,
    update the user's current tenant, create the new session, load the tenant data,
    invalidate the old session. A failure or cancellation compensates in reverse: the old
    session restored, the new session rolled back, the previous current tenant put back.
    A tenant the caller does not belong to is refused ("not found") before any change.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog(total=6)

    @workflow.run
    async def run(self, input: TenantSwitchingInput) -> TenantSwitchingResult:
        caller = _caller(input.from_tenant_id)
        if input.user_id != caller.user_id:
            raise ApplicationError(
                "user not found", type=ErrorKind.TENANT_ISOLATION.value, non_retryable=True
            )
        operation_id = workflow.info().workflow_id
        call = _Calls(input.activity_timeout_seconds)
        saga = Saga(self._progress)
        self._progress.record(EventKind.STARTED, message=f"switching to {input.to_tenant_id}")
        try:

            async def validate_access() -> SwitchAccess:
                access = await call(
                    TenantTask.CHECK_SWITCH_ACCESS,
                    SwitchAccessInput(tenant_id=input.to_tenant_id),
                    SwitchAccess,
                )
                await call(
                    AuthActivity.VALIDATE_CREDENTIALS,
                    ValidateCredentialsInput(tenant_id=input.to_tenant_id),
                    CredentialsCheck,
                    queue=TaskQueue.AUTH,
                )
                return access

            access = await saga.step("validate_access", validate_access)
            target = RequestContext(
                user_id=caller.user_id,
                tenant_id=input.to_tenant_id,
                roles=tuple(access.roles),
                correlation_id=caller.correlation_id,
            )
            await saga.step(
                "capture_session",
                lambda: call(
                    AuthActivity.VALIDATE_CREDENTIALS,
                    ValidateCredentialsInput(session_id=input.current_session_id),
                    CredentialsCheck,
                    queue=TaskQueue.AUTH,
                ),
            )
            switch = SetCurrentTenantInput(tenant_id=input.to_tenant_id, operation_id=operation_id)
            await saga.step(
                "update_current_tenant",
                lambda: call(TenantTask.SET_CURRENT_TENANT, switch, CurrentTenantSet),
                _compensation(
                    lambda: call(
                        TenantTask.RESTORE_CURRENT_TENANT, switch, Changed, compensation=True
                    )
                ),
            )
            new_session = SessionInput(session_id=str(workflow.uuid4()))
            session = await saga.step(
                "create_session",
                lambda: call(
                    AuthActivity.CREATE_SESSION,
                    CreateSessionInput(
                        session_id=new_session.session_id, tenant_id=input.to_tenant_id
                    ),
                    CreatedSession,
                    queue=TaskQueue.AUTH,
                ),
                _compensation(
                    lambda: call(
                        AuthActivity.ROLLBACK_SESSION_CREATION,
                        new_session,
                        SessionChange,
                        queue=TaskQueue.AUTH,
                        compensation=True,
                    )
                ),
            )
            data = await saga.step(
                "load_tenant_data",
                lambda: call(
                    TenantTask.LOAD_TENANT_DATA,
                    LoadTenantDataInput(tenant_id=input.to_tenant_id),
                    TenantData,
                    context=target,
                ),
            )
            old_session = SessionInput(session_id=input.current_session_id)
            await saga.step(
                "invalidate_old_session",
                lambda: call(
                    AuthActivity.INVALIDATE_SESSION,
                    old_session,
                    SessionChange,
                    queue=TaskQueue.AUTH,
                ),
                _compensation(
                    lambda: call(
                        AuthActivity.RESTORE_PREVIOUS_SESSION,
                        old_session,
                        SessionChange,
                        queue=TaskQueue.AUTH,
                        compensation=True,
                    )
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from error
        return TenantSwitchingResult(
            tenant=data,
            roles=session.roles,
            session_id=session.session_id,
            exchange_code=session.exchange_code,
        )


# Upgrade -------------------------------------------------------------------------------


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.TENANT_UPGRADE.value, versioning_behavior=AUTO_UPGRADE)
class TenantUpgradeWorkflow(_ProgressQuery):
    """Changes the plan of the caller's tenant (owner only).

    Steps: price the change, create the invoice, charge it, apply the plan and its quotas.
    A failure or cancellation refunds the charge, deletes the invoice and puts the previous
    plan back.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog(total=4)

    @workflow.run
    async def run(self, input: TenantUpgradeInput) -> TenantUpgradeResult:
        caller = _caller(input.tenant_id)
        _require(caller, frozenset({"owner"}), "change the plan")
        operation_id = workflow.info().workflow_id
        call = _Calls(input.activity_timeout_seconds)
        saga = Saga(self._progress)
        self._progress.record(EventKind.STARTED, message=f"changing the plan to {input.plan}")
        try:
            plan = await saga.step(
                "prepare_upgrade",
                lambda: call(
                    TenantTask.PREPARE_UPGRADE,
                    PrepareUpgradeInput(tenant_id=input.tenant_id, plan=input.plan),
                    UpgradePlan,
                ),
            )
            invoice = await saga.step(
                "create_invoice",
                lambda: call(
                    TenantTask.CREATE_INVOICE,
                    CreateInvoiceInput(
                        tenant_id=input.tenant_id,
                        operation_id=operation_id,
                        plan=plan.plan,
                        previous_plan=plan.current_plan,
                        amount_cents=plan.amount_cents,
                    ),
                    Invoice,
                ),
                _compensation(
                    lambda: call(
                        TenantTask.DELETE_INVOICE,
                        InvoiceInput(tenant_id=input.tenant_id, invoice_id=invoice.id),
                        Changed,
                        compensation=True,
                    )
                ),
            )
            charged = await saga.step(
                "charge",
                lambda: call(
                    TenantTask.CHARGE_INVOICE,
                    InvoiceInput(tenant_id=input.tenant_id, invoice_id=invoice.id),
                    Invoice,
                ),
                _compensation(
                    lambda: call(
                        TenantTask.REFUND_INVOICE,
                        InvoiceInput(tenant_id=input.tenant_id, invoice_id=invoice.id),
                        Changed,
                        compensation=True,
                    )
                ),
            )
            await saga.step(
                "apply_plan",
                lambda: call(
                    TenantTask.APPLY_PLAN,
                    ApplyPlanInput(
                        tenant_id=input.tenant_id,
                        operation_id=operation_id,
                        plan=plan.plan,
                        quotas=plan.quotas,
                    ),
                    Tenant,
                ),
                _compensation(
                    lambda: call(
                        TenantTask.RESTORE_PLAN,
                        RestorePlanInput(
                            tenant_id=input.tenant_id,
                            operation_id=operation_id,
                            plan=plan.current_plan,
                            quotas=plan.previous_quotas,
                        ),
                        Changed,
                        compensation=True,
                    )
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from error
        return TenantUpgradeResult(
            tenant_id=input.tenant_id,
            previous_plan=plan.current_plan,
            plan=plan.plan,
            invoice=charged,
            quotas=plan.quotas,
        )


# Suspension ----------------------------------------------------------------------------


# Pinned: suspended for months; it ends on the build it began on.
@workflow.defn(name=WorkflowType.TENANT_SUSPENSION.value, versioning_behavior=PINNED)
class TenantSuspensionWorkflow(_ProgressQuery):
    """Suspends the caller's tenant (owner only), reversibly: data is kept.

    Steps: mark the tenant suspended, then for every active member end their sessions in
    the tenant and suspend their grant (auth service keeps the roles). Then wait for
    ``resume_tenant`` (from an owner of the tenant) or ``resume_after_seconds``; resuming
    re-activates the grants and the tenant. A failure or cancellation before the resume
    compensates the same way.
    """

    @workflow.init
    def __init__(self, input: TenantSuspensionInput) -> None:
        self._tenant_id = input.tenant_id
        self._progress = ProgressLog(total=3)
        self._resume: ResumeTenantSignal | None = None

    @workflow.signal(name=SignalName.RESUME_TENANT.value)
    def resume(self, signal: ResumeTenantSignal) -> None:
        context = current_context()
        if context is None or context.tenant_id != self._tenant_id or "owner" not in context.roles:
            workflow.logger.warning("security.resume_tenant_rejected: not an owner of the tenant")
            return
        if self._resume is None:
            self._resume = signal
            self._progress.record(EventKind.MESSAGE, "resume_requested", "resume requested")

    @workflow.run
    async def run(self, input: TenantSuspensionInput) -> TenantSuspensionResult:
        caller = _caller(input.tenant_id)
        _require(caller, frozenset({"owner"}), "suspend the tenant")
        operation_id = workflow.info().workflow_id
        call = _Calls(input.activity_timeout_seconds)
        saga = Saga(self._progress)
        self._progress.record(EventKind.STARTED, message=f"suspending {input.tenant_id}")
        members: list[str] = []
        roles: dict[str, list[str]] = {}

        def status(value: TenantStatus, compensation: bool = False) -> Awaitable[Changed]:
            return call(
                TenantTask.SET_TENANT_STATUS,
                SetTenantStatusInput(
                    tenant_id=input.tenant_id, status=value, operation_id=operation_id
                ),
                Changed,
                compensation=compensation,
            )

        async def reactivate_grants(compensation: bool = False) -> None:
            for user_id in members:
                await call(
                    AuthActivity.GRANT_TENANT_ACCESS,
                    GrantTenantAccessInput(
                        user_id=user_id, tenant_id=input.tenant_id, roles=roles[user_id]
                    ),
                    TenantGrant,
                    queue=TaskQueue.AUTH,
                    compensation=compensation,
                )

        async def suspend_access() -> None:
            listed = await call(
                TenantTask.LIST_MEMBERS, ListMembersInput(tenant_id=input.tenant_id), MemberList
            )
            for member in listed.members:
                if member.status is not MemberStatus.ACTIVE:
                    continue
                members.append(member.user_id)
                roles[member.user_id] = member.roles
                await call(
                    AuthActivity.REVOKE_TENANT_ACCESS,
                    RevokeTenantAccessInput(user_id=member.user_id, tenant_id=input.tenant_id),
                    TenantAccessRevoked,
                    queue=TaskQueue.AUTH,
                )
                await call(
                    AuthActivity.GRANT_TENANT_ACCESS,
                    GrantTenantAccessInput(
                        user_id=member.user_id,
                        tenant_id=input.tenant_id,
                        roles=member.roles,
                        status=GrantStatus.SUSPENDED,
                    ),
                    TenantGrant,
                    queue=TaskQueue.AUTH,
                )

        try:
            await saga.step(
                "mark_suspended",
                lambda: status(TenantStatus.SUSPENDED),
                _compensation(lambda: status(TenantStatus.ACTIVE, compensation=True)),
            )
            # Registered first: members handled before a failure get their grant back.
            saga.add_compensation("suspend_access", lambda: reactivate_grants(True))
            await saga.step("suspend_access", suspend_access)
            self._progress.record(EventKind.MESSAGE, "suspended", "waiting for a resume request")
            timeout = (
                timedelta(seconds=input.resume_after_seconds)
                if input.resume_after_seconds
                else None
            )
            outcome = SuspensionOutcome.RESUMED
            try:
                await workflow.wait_condition(lambda: self._resume is not None, timeout=timeout)
            except TimeoutError:
                outcome = SuspensionOutcome.RESUMED_AFTER_TIMEOUT

            async def resume() -> None:
                await reactivate_grants()
                await status(TenantStatus.ACTIVE)

            await saga.step("resume", resume)
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from error
        return TenantSuspensionResult(
            tenant_id=input.tenant_id,
            outcome=outcome,
            suspended_members=members,
            resumed_by=self._resume.requested_by if self._resume else None,
        )


# Membership sync -----------------------------------------------------------------------


def _grant_status(status: MemberStatus) -> GrantStatus:
    return GrantStatus.ACTIVE if status is MemberStatus.ACTIVE else GrantStatus.SUSPENDED


# Auto-upgrade: done in seconds; a new build replays it.
@workflow.defn(name=WorkflowType.TENANT_MEMBERSHIP_SYNC.value, versioning_behavior=AUTO_UPGRADE)
class TenantMembershipSyncWorkflow(_ProgressQuery):
    """A member added, given other roles, or removed, in the three stores that know it: the
    tenant's membership (the source of truth), the auth grant (what tokens carry) and the user
    service's membership projection (the directory).

    Steps: read the membership as it is (tenant and user stores), change it in the tenant,
    then grant access with the new roles (auth), then the projection (user). A removal ends
    with the auth step instead: revoking the grant also ends the member's sessions in the
    tenant, which no compensation could give back, so it runs once everything else is done.
    A failure or cancellation puts every store back as it was: the tenant row and the
    projection row from what was read before, the grant from the previous membership.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog(total=4)

    @workflow.run
    async def run(self, input: TenantMembershipSyncInput) -> TenantMembershipSyncResult:
        caller = _caller(input.tenant_id)
        _require(caller, MANAGER_ROLES, "manage members")
        operation_id = workflow.info().workflow_id
        call = _Calls(input.activity_timeout_seconds)
        tenant_id, user_id, change = input.tenant_id, input.user_id, input.change
        roles = list(dict.fromkeys(input.roles))
        saga = Saga(self._progress)
        self._progress.record(EventKind.STARTED, message=f"{change.value} {user_id}")
        try:

            async def read() -> tuple[MemberState, MembershipState]:
                tenant_state = await call(
                    TenantTask.READ_MEMBERSHIP,
                    ReadMembershipInput(tenant_id=tenant_id, user_id=user_id),
                    MemberState,
                )
                user_state = await call(
                    UserActivity.GET_MEMBERSHIP,
                    GetMembershipInput(user_id=user_id, tenant_id=tenant_id),
                    MembershipState,
                    queue=TaskQueue.USER,
                )
                return tenant_state, user_state

            tenant_state, user_state = await saga.step("read_membership", read)
            previous = tenant_state.member
            if change is MembershipChange.ADD and previous is not None:
                raise ApplicationError(
                    "already a member", type=ErrorKind.CONFLICT.value, non_retryable=True
                )
            if change is not MembershipChange.ADD and previous is None:
                raise ApplicationError(
                    "member not found", type=ErrorKind.NOT_FOUND.value, non_retryable=True
                )

            changed = await saga.step(
                "change_membership",
                lambda: call(
                    TenantTask.CHANGE_MEMBERSHIP,
                    ChangeMembershipInput(
                        tenant_id=tenant_id,
                        user_id=user_id,
                        change=change,
                        roles=roles,
                        operation_id=operation_id,
                    ),
                    MembershipChanged,
                ),
                _compensation(
                    lambda: call(
                        TenantTask.RESTORE_MEMBERSHIP,
                        RestoreMembershipInput(
                            tenant_id=tenant_id,
                            user_id=user_id,
                            operation_id=operation_id,
                            previous=previous,
                        ),
                        Changed,
                        compensation=True,
                    )
                ),
            )

            async def grant_back() -> None:
                # The grant as the membership before the change implies (none: no grant).
                if previous is None:
                    await call(
                        AuthActivity.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(
                            user_id=user_id, tenant_id=tenant_id, revoke_sessions=False
                        ),
                        TenantAccessRevoked,
                        queue=TaskQueue.AUTH,
                        compensation=True,
                    )
                    return
                await call(
                    AuthActivity.GRANT_TENANT_ACCESS,
                    GrantTenantAccessInput(
                        user_id=user_id,
                        tenant_id=tenant_id,
                        roles=previous.roles,
                        status=_grant_status(previous.status),
                    ),
                    TenantGrant,
                    queue=TaskQueue.AUTH,
                    compensation=True,
                )

            async def projection_back() -> None:
                await call(
                    UserActivity.RESET_MEMBERSHIP,
                    ResetMembershipInput(
                        user_id=user_id, tenant_id=tenant_id, previous=user_state.membership
                    ),
                    MembershipsChanged,
                    queue=TaskQueue.USER,
                    compensation=True,
                )

            if change is MembershipChange.REMOVE:
                await saga.step(
                    "sync_user_projection",
                    lambda: call(
                        UserActivity.REMOVE_MEMBERSHIP,
                        RemoveMembershipInput(user_id=user_id, tenant_id=tenant_id),
                        MembershipsChanged,
                        queue=TaskQueue.USER,
                    ),
                    projection_back,
                )
                await saga.step(
                    "revoke_access",
                    lambda: call(
                        AuthActivity.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(user_id=user_id, tenant_id=tenant_id),
                        TenantAccessRevoked,
                        queue=TaskQueue.AUTH,
                    ),
                )
            else:
                member = changed.member
                status = MemberStatus.ACTIVE if member is None else member.status
                await saga.step(
                    "grant_access",
                    lambda: call(
                        AuthActivity.GRANT_TENANT_ACCESS,
                        GrantTenantAccessInput(
                            user_id=user_id,
                            tenant_id=tenant_id,
                            roles=roles,
                            status=_grant_status(status),
                        ),
                        TenantGrant,
                        queue=TaskQueue.AUTH,
                    ),
                    grant_back,
                )
                await saga.step(
                    "sync_user_projection",
                    lambda: call(
                        UserActivity.UPSERT_MEMBERSHIP,
                        UserMembershipInput(user_id=user_id, tenant_id=tenant_id, roles=roles),
                        Membership,
                        queue=TaskQueue.USER,
                    ),
                    projection_back,
                )
        except (asyncio.CancelledError, FailureError) as error:
            await saga.compensate()
            raise saga.failure(error) from error
        return TenantMembershipSyncResult(
            tenant_id=tenant_id,
            user_id=user_id,
            change=change,
            member=changed.member,
            previous_roles=None if previous is None else previous.roles,
        )


# Read workflow (BFF aggregation) -------------------------------------------------------


# Auto-upgrade: one read, milliseconds.
@workflow.defn(name=WorkflowType.GET_TENANT_DATA.value, versioning_behavior=AUTO_UPGRADE)
class GetTenantDataWorkflow(_ProgressQuery):
    """The caller's tenant: one local activity, no side effects."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=1)

    @workflow.run
    async def run(self, input: GetTenantDataInput) -> TenantData:
        _caller(input.tenant_id)
        saga = Saga(self._progress)
        self._progress.record(EventKind.STARTED)

        async def read() -> TenantData:
            data: TenantData = await workflow.execute_local_activity(
                TenantTask.LOAD_TENANT_DATA,
                LoadTenantDataInput(tenant_id=input.tenant_id),
                start_to_close_timeout=READ_TIMEOUT,
                retry_policy=READ_RETRY,
                result_type=TenantData,
            )
            return data

        try:
            return await saga.step("load_tenant_data", read)
        except FailureError as error:
            raise saga.failure(error) from error


WORKFLOWS: list[type[Any]] = [
    TenantProvisioningWorkflow,
    TenantSwitchingWorkflow,
    TenantUpgradeWorkflow,
    TenantSuspensionWorkflow,
    GetTenantDataWorkflow,
    TenantMembershipSyncWorkflow,
]
