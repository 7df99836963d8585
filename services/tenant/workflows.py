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
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from contracts.auth import (
        AuthActivities,
        CreateSessionInput,
        GrantStatus,
        GrantTenantAccessInput,
        RevokeTenantAccessInput,
        SessionInput,
        TenantGrant,
        ValidateCredentialsInput,
    )
    from contracts.context import RequestContext, current_context
    from contracts.errors import ErrorKind
    from contracts.names import SignalName, WorkflowType
    from contracts.progress import EventKind
    from contracts.tenant import (
        MANAGER_ROLES,
        OWNER_ROLES,
        AddMemberInput,
        ApplyPlanInput,
        ChangeMembershipInput,
        CreateInvoiceInput,
        CreateTenantInput,
        GetTenantDataInput,
        InvoiceInput,
        ListMembersInput,
        LoadTenantDataInput,
        MembershipChange,
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
        TenantActivities,
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
        TenantUpgradeInput,
        TenantUpgradeResult,
    )
    from contracts.user import (
        GetMembershipInput,
        MembershipState,
        RemoveMembershipInput,
        ResetMembershipInput,
        UserActivities,
    )
    from contracts.user import UpsertMembershipInput as UserMembershipInput
    from services.common.progress import ProgressLog
    from services.common.steps import (
        COMPENSATION,
        FORWARD,
        ProgressWorkflow,
        Steps,
        caller,
        final,
        require_roles,
    )

SUSPEND_IN_PLACE_PATCH = "tenant-suspension-grants-in-place"

# Worker Versioning behaviors (workflow_client/versioning.py, CONTRIBUTING.md).
PINNED = VersioningBehavior.PINNED
AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE

# Provisioning --------------------------------------------------------------------------


# Auto-upgrade: done in seconds; changes are patched (tests/replay).
@workflow.defn(name=WorkflowType.TENANT_PROVISIONING.value, versioning_behavior=AUTO_UPGRADE)
class TenantProvisioningWorkflow(ProgressWorkflow):
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
        context = caller()
        operation_id = workflow.info().workflow_id
        steps = Steps(self._progress, forward=FORWARD.with_timeout(input.activity_timeout_seconds))
        undo = COMPENSATION.with_timeout(input.activity_timeout_seconds)
        tenant_id = input.tenant_id
        # The caller owns the tenant being created: its steps act as its owner.
        owner = RequestContext(
            user_id=context.user_id,
            tenant_id=tenant_id,
            roles=tuple(OWNER_ROLES),
            correlation_id=context.correlation_id,
        )
        op = TenantOperationInput(tenant_id=tenant_id, operation_id=operation_id)
        self._progress.record(EventKind.STARTED, message=f"provisioning {tenant_id}")
        try:
            await steps.step(
                "create_tenant",
                lambda: steps.call(
                    TenantActivities.CREATE_TENANT,
                    CreateTenantInput(
                        tenant_id=tenant_id,
                        name=input.name,
                        plan=input.plan,
                        operation_id=operation_id,
                    ),
                    context=owner,
                ),
                lambda _: steps.undo(
                    TenantActivities.DELETE_TENANT, op, context=owner, options=undo
                ),
            )
            await steps.step(
                "create_default_roles",
                lambda: steps.call(TenantActivities.CREATE_DEFAULT_ROLES, op, context=owner),
                lambda _: steps.undo(
                    TenantActivities.DELETE_ROLES, op, context=owner, options=undo
                ),
            )
            tenant = await steps.step(
                "set_quotas",
                lambda: steps.call(TenantActivities.SET_QUOTAS, op, context=owner),
                lambda _: steps.undo(
                    TenantActivities.CLEAR_QUOTAS, op, context=owner, options=undo
                ),
            )
            await steps.step(
                "add_owner_membership",
                lambda: steps.call(
                    TenantActivities.ADD_MEMBER,
                    AddMemberInput(
                        tenant_id=tenant_id,
                        user_id=context.user_id,
                        roles=list(OWNER_ROLES),
                        operation_id=operation_id,
                    ),
                    context=owner,
                ),
                lambda _: steps.undo(
                    TenantActivities.REMOVE_MEMBER,
                    RemoveMemberInput(
                        tenant_id=tenant_id, user_id=context.user_id, operation_id=operation_id
                    ),
                    context=owner,
                    options=undo,
                ),
            )
            await steps.step(
                "grant_owner_access",
                lambda: steps.call(
                    AuthActivities.GRANT_TENANT_ACCESS,
                    GrantTenantAccessInput(
                        user_id=context.user_id, tenant_id=tenant_id, roles=list(OWNER_ROLES)
                    ),
                    context=owner,
                ),
                lambda _: steps.undo(
                    AuthActivities.REVOKE_TENANT_ACCESS,
                    RevokeTenantAccessInput(user_id=context.user_id, tenant_id=tenant_id),
                    context=owner,
                    options=undo,
                ),
            )
            await steps.step(
                "sync_user_projection",
                lambda: steps.call(
                    UserActivities.UPSERT_MEMBERSHIP,
                    UserMembershipInput(
                        user_id=context.user_id, tenant_id=tenant_id, roles=list(OWNER_ROLES)
                    ),
                    context=owner,
                ),
                lambda _: steps.undo(
                    UserActivities.REMOVE_MEMBERSHIP,
                    RemoveMembershipInput(user_id=context.user_id, tenant_id=tenant_id),
                    context=owner,
                    options=undo,
                ),
            )
            # Patched in (CONTRIBUTING.md, "Changing a workflow safely"): runs started before
            # it replay without the step (tests/histories/tenant_provisioning/
            # success-v1-before-patch.json). The audit reads the new tenant back as its owner,
            # so a tenant its owner cannot open fails (and is undone) instead of being reported.
            if workflow.patched("tenant-provisioning-audit-v2"):
                self._progress.set_total(7)
                await steps.step(
                    "audit_provisioning",
                    # A read, retried like the forward steps (as it always was).
                    lambda: steps.read(
                        TenantActivities.LOAD_TENANT_DATA,
                        LoadTenantDataInput(tenant_id=tenant_id),
                        context=owner,
                        options=steps.forward,
                    ),
                )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
        return TenantProvisioningResult(
            tenant=tenant, owner_id=context.user_id, roles=list(OWNER_ROLES)
        )


# Switching -----------------------------------------------------------------------------


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.TENANT_SWITCHING.value, versioning_behavior=AUTO_UPGRADE)
class TenantSwitchingWorkflow(ProgressWorkflow):
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
        context = caller(input.from_tenant_id)
        if input.user_id != context.user_id:
            raise final(ErrorKind.TENANT_ISOLATION, "user not found")
        operation_id = workflow.info().workflow_id
        steps = Steps(self._progress, forward=FORWARD.with_timeout(input.activity_timeout_seconds))
        undo = COMPENSATION.with_timeout(input.activity_timeout_seconds)
        self._progress.record(EventKind.STARTED, message=f"switching to {input.to_tenant_id}")
        try:
            # The checks are reads, retried like the forward steps (as they always were).

            async def validate_access() -> SwitchAccess:
                access = await steps.read(
                    TenantActivities.CHECK_SWITCH_ACCESS,
                    SwitchAccessInput(tenant_id=input.to_tenant_id),
                    options=steps.forward,
                )
                await steps.read(
                    AuthActivities.VALIDATE_CREDENTIALS,
                    ValidateCredentialsInput(tenant_id=input.to_tenant_id),
                    options=steps.forward,
                )
                return access

            access = await steps.step("validate_access", validate_access)
            target = RequestContext(
                user_id=context.user_id,
                tenant_id=input.to_tenant_id,
                roles=tuple(access.roles),
                correlation_id=context.correlation_id,
            )
            await steps.step(
                "capture_session",
                lambda: steps.read(
                    AuthActivities.VALIDATE_CREDENTIALS,
                    ValidateCredentialsInput(session_id=input.current_session_id),
                    options=steps.forward,
                ),
            )
            switch = SetCurrentTenantInput(tenant_id=input.to_tenant_id, operation_id=operation_id)
            await steps.step(
                "update_current_tenant",
                lambda: steps.call(TenantActivities.SET_CURRENT_TENANT, switch),
                lambda _: steps.undo(TenantActivities.RESTORE_CURRENT_TENANT, switch, options=undo),
            )
            new_session = SessionInput(session_id=str(workflow.uuid4()))
            session = await steps.step(
                "create_session",
                lambda: steps.call(
                    AuthActivities.CREATE_SESSION,
                    CreateSessionInput(
                        session_id=new_session.session_id, tenant_id=input.to_tenant_id
                    ),
                ),
                lambda _: steps.undo(
                    AuthActivities.ROLLBACK_SESSION_CREATION, new_session, options=undo
                ),
            )
            data = await steps.step(
                "load_tenant_data",
                lambda: steps.read(
                    TenantActivities.LOAD_TENANT_DATA,
                    LoadTenantDataInput(tenant_id=input.to_tenant_id),
                    context=target,
                    options=steps.forward,
                ),
            )
            old_session = SessionInput(session_id=input.current_session_id)
            await steps.step(
                "invalidate_old_session",
                lambda: steps.call(AuthActivities.INVALIDATE_SESSION, old_session),
                lambda _: steps.undo(
                    AuthActivities.RESTORE_PREVIOUS_SESSION, old_session, options=undo
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
        return TenantSwitchingResult(
            tenant=data,
            roles=session.roles,
            session_id=session.session_id,
            exchange_code=session.exchange_code,
        )


# Upgrade -------------------------------------------------------------------------------


# Auto-upgrade: done in seconds; a new build replays it (tests/replay).
@workflow.defn(name=WorkflowType.TENANT_UPGRADE.value, versioning_behavior=AUTO_UPGRADE)
class TenantUpgradeWorkflow(ProgressWorkflow):
    """Changes the plan of the caller's tenant (owner only).

    Steps: price the change, create the invoice, charge it, apply the plan and its quotas.
    A failure or cancellation refunds the charge, deletes the invoice and puts the previous
    plan back.
    """

    def __init__(self) -> None:
        self._progress = ProgressLog(total=4)

    @workflow.run
    async def run(self, input: TenantUpgradeInput) -> TenantUpgradeResult:
        context = caller(input.tenant_id)
        require_roles(context, {"owner"}, "change the plan")
        operation_id = workflow.info().workflow_id
        steps = Steps(self._progress, forward=FORWARD.with_timeout(input.activity_timeout_seconds))
        undo = COMPENSATION.with_timeout(input.activity_timeout_seconds)
        self._progress.record(EventKind.STARTED, message=f"changing the plan to {input.plan}")
        try:
            plan = await steps.step(
                "prepare_upgrade",
                # Pricing is a read, retried like the forward steps (as it always was).
                lambda: steps.read(
                    TenantActivities.PREPARE_UPGRADE,
                    PrepareUpgradeInput(tenant_id=input.tenant_id, plan=input.plan),
                    options=steps.forward,
                ),
            )
            invoice = await steps.step(
                "create_invoice",
                lambda: steps.call(
                    TenantActivities.CREATE_INVOICE,
                    CreateInvoiceInput(
                        tenant_id=input.tenant_id,
                        operation_id=operation_id,
                        plan=plan.plan,
                        previous_plan=plan.current_plan,
                        amount_cents=plan.amount_cents,
                    ),
                ),
                lambda created: steps.undo(
                    TenantActivities.DELETE_INVOICE,
                    InvoiceInput(tenant_id=input.tenant_id, invoice_id=created.id),
                    options=undo,
                ),
            )
            charged = await steps.step(
                "charge",
                lambda: steps.call(
                    TenantActivities.CHARGE_INVOICE,
                    InvoiceInput(tenant_id=input.tenant_id, invoice_id=invoice.id),
                ),
                lambda paid: steps.undo(
                    TenantActivities.REFUND_INVOICE,
                    InvoiceInput(tenant_id=input.tenant_id, invoice_id=paid.id),
                    options=undo,
                ),
            )
            await steps.step(
                "apply_plan",
                lambda: steps.call(
                    TenantActivities.APPLY_PLAN,
                    ApplyPlanInput(
                        tenant_id=input.tenant_id,
                        operation_id=operation_id,
                        plan=plan.plan,
                        quotas=plan.quotas,
                    ),
                ),
                lambda _: steps.undo(
                    TenantActivities.RESTORE_PLAN,
                    RestorePlanInput(
                        tenant_id=input.tenant_id,
                        operation_id=operation_id,
                        plan=plan.current_plan,
                        quotas=plan.previous_quotas,
                    ),
                    options=undo,
                ),
            )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
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
class TenantSuspensionWorkflow(ProgressWorkflow):
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
        context = caller(input.tenant_id)
        require_roles(context, {"owner"}, "suspend the tenant")
        operation_id = workflow.info().workflow_id
        steps = Steps(self._progress, forward=FORWARD.with_timeout(input.activity_timeout_seconds))
        undo = COMPENSATION.with_timeout(input.activity_timeout_seconds)
        self._progress.record(EventKind.STARTED, message=f"suspending {input.tenant_id}")
        members: list[str] = []
        roles: dict[str, list[str]] = {}

        def status(value: TenantStatus) -> SetTenantStatusInput:
            return SetTenantStatusInput(
                tenant_id=input.tenant_id, status=value, operation_id=operation_id
            )

        async def reactivate_grants(compensating: bool = False) -> None:
            for user_id in members:
                grant = GrantTenantAccessInput(
                    user_id=user_id, tenant_id=input.tenant_id, roles=roles[user_id]
                )
                if compensating:
                    await steps.undo(AuthActivities.GRANT_TENANT_ACCESS, grant, options=undo)
                else:
                    await steps.call(AuthActivities.GRANT_TENANT_ACCESS, grant)

        async def suspend_access() -> None:
            # A read, retried like the forward steps (as it always was).
            listed = await steps.read(
                TenantActivities.LIST_MEMBERS,
                ListMembersInput(tenant_id=input.tenant_id),
                options=steps.forward,
            )
            # Patched: a suspended grant ends its sessions itself, so the grant is changed in
            # place (it keeps its age, which orders the member's default tenant) instead of
            # deleted and made anew. Runs from before replay with the delete.
            in_place = workflow.patched(SUSPEND_IN_PLACE_PATCH)
            for member in listed.members:
                if member.status is not MemberStatus.ACTIVE:
                    continue
                members.append(member.user_id)
                roles[member.user_id] = member.roles
                if not in_place:
                    await steps.call(
                        AuthActivities.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(user_id=member.user_id, tenant_id=input.tenant_id),
                    )
                await steps.call(
                    AuthActivities.GRANT_TENANT_ACCESS,
                    GrantTenantAccessInput(
                        user_id=member.user_id,
                        tenant_id=input.tenant_id,
                        roles=member.roles,
                        status=GrantStatus.SUSPENDED,
                    ),
                )

        try:
            await steps.step(
                "mark_suspended",
                lambda: steps.call(
                    TenantActivities.SET_TENANT_STATUS, status(TenantStatus.SUSPENDED)
                ),
                lambda _: steps.undo(
                    TenantActivities.SET_TENANT_STATUS, status(TenantStatus.ACTIVE), options=undo
                ),
            )
            # Registered first: members handled before a failure get their grant back.
            steps.add_compensation("suspend_access", lambda: reactivate_grants(True))
            await steps.step("suspend_access", suspend_access)
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
                await steps.call(TenantActivities.SET_TENANT_STATUS, status(TenantStatus.ACTIVE))

            await steps.step("resume", resume)
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
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
class TenantMembershipSyncWorkflow(ProgressWorkflow):
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
        context = caller(input.tenant_id)
        require_roles(context, MANAGER_ROLES, "manage members")
        operation_id = workflow.info().workflow_id
        steps = Steps(self._progress, forward=FORWARD.with_timeout(input.activity_timeout_seconds))
        undo = COMPENSATION.with_timeout(input.activity_timeout_seconds)
        tenant_id, user_id, change = input.tenant_id, input.user_id, input.change
        roles = list(dict.fromkeys(input.roles))
        self._progress.record(EventKind.STARTED, message=f"{change.value} {user_id}")
        try:

            async def read() -> tuple[MemberState, MembershipState]:
                # Reads, retried like the forward steps (as they always were).
                tenant_state = await steps.read(
                    TenantActivities.READ_MEMBERSHIP,
                    ReadMembershipInput(tenant_id=tenant_id, user_id=user_id),
                    options=steps.forward,
                )
                user_state = await steps.read(
                    UserActivities.GET_MEMBERSHIP,
                    GetMembershipInput(user_id=user_id, tenant_id=tenant_id),
                    options=steps.forward,
                )
                return tenant_state, user_state

            tenant_state, user_state = await steps.step("read_membership", read)
            previous = tenant_state.member
            if change is MembershipChange.ADD and previous is not None:
                raise final(ErrorKind.CONFLICT, "already a member")
            if change is not MembershipChange.ADD and previous is None:
                raise final(ErrorKind.NOT_FOUND, "member not found")

            changed = await steps.step(
                "change_membership",
                lambda: steps.call(
                    TenantActivities.CHANGE_MEMBERSHIP,
                    ChangeMembershipInput(
                        tenant_id=tenant_id,
                        user_id=user_id,
                        change=change,
                        roles=roles,
                        operation_id=operation_id,
                    ),
                ),
                lambda _: steps.undo(
                    TenantActivities.RESTORE_MEMBERSHIP,
                    RestoreMembershipInput(
                        tenant_id=tenant_id,
                        user_id=user_id,
                        operation_id=operation_id,
                        previous=previous,
                    ),
                    options=undo,
                ),
            )

            async def grant_back(_: TenantGrant) -> None:
                # The grant as the membership before the change implies (none: no grant).
                if previous is None:
                    await steps.undo(
                        AuthActivities.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(
                            user_id=user_id, tenant_id=tenant_id, revoke_sessions=False
                        ),
                        options=undo,
                    )
                    return
                await steps.undo(
                    AuthActivities.GRANT_TENANT_ACCESS,
                    GrantTenantAccessInput(
                        user_id=user_id,
                        tenant_id=tenant_id,
                        roles=previous.roles,
                        status=_grant_status(previous.status),
                    ),
                    options=undo,
                )

            async def projection_back(_: object) -> None:
                await steps.undo(
                    UserActivities.RESET_MEMBERSHIP,
                    ResetMembershipInput(
                        user_id=user_id, tenant_id=tenant_id, previous=user_state.membership
                    ),
                    options=undo,
                )

            if change is MembershipChange.REMOVE:
                await steps.step(
                    "sync_user_projection",
                    lambda: steps.call(
                        UserActivities.REMOVE_MEMBERSHIP,
                        RemoveMembershipInput(user_id=user_id, tenant_id=tenant_id),
                    ),
                    projection_back,
                )
                await steps.step(
                    "revoke_access",
                    lambda: steps.call(
                        AuthActivities.REVOKE_TENANT_ACCESS,
                        RevokeTenantAccessInput(user_id=user_id, tenant_id=tenant_id),
                    ),
                )
            else:
                member = changed.member
                status = MemberStatus.ACTIVE if member is None else member.status
                await steps.step(
                    "grant_access",
                    lambda: steps.call(
                        AuthActivities.GRANT_TENANT_ACCESS,
                        GrantTenantAccessInput(
                            user_id=user_id,
                            tenant_id=tenant_id,
                            roles=roles,
                            status=_grant_status(status),
                        ),
                    ),
                    grant_back,
                )
                await steps.step(
                    "sync_user_projection",
                    lambda: steps.call(
                        UserActivities.UPSERT_MEMBERSHIP,
                        UserMembershipInput(user_id=user_id, tenant_id=tenant_id, roles=roles),
                    ),
                    projection_back,
                )
        except (asyncio.CancelledError, FailureError) as error:
            await steps.compensate()
            raise steps.failure(error) from error
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
class GetTenantDataWorkflow(ProgressWorkflow):
    """The caller's tenant: one local activity, no side effects."""

    def __init__(self) -> None:
        self._progress = ProgressLog(total=1)

    @workflow.run
    async def run(self, input: GetTenantDataInput) -> TenantData:
        caller(input.tenant_id)
        steps = Steps(self._progress)
        self._progress.record(EventKind.STARTED)
        try:
            # A local activity: quick, in this service.
            return await steps.step(
                "load_tenant_data",
                lambda: steps.read(
                    TenantActivities.LOAD_TENANT_DATA,
                    LoadTenantDataInput(tenant_id=input.tenant_id),
                    local=True,
                ),
            )
        except FailureError as error:
            raise steps.failure(error) from error


WORKFLOWS: list[type[Any]] = [
    TenantProvisioningWorkflow,
    TenantSwitchingWorkflow,
    TenantUpgradeWorkflow,
    TenantSuspensionWorkflow,
    GetTenantDataWorkflow,
    TenantMembershipSyncWorkflow,
]
