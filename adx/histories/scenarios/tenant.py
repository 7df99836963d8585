"""The tenant service's scenarios: provisioning, switching, upgrade, suspension, membership
sync and the read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowExecutionStatus

from adx.histories.scenarios.fixtures import (
    OWNER,
    _alice,
    _auth_parts,
    _new_member,
    _new_tenant,
    _unique,
    _waiting,
)
from adx.histories.scenarios.registry import Recorded, _compensated, recorded, scenario
from adx.histories.stack import Harness
from contracts.context import RequestContext
from contracts.names import SignalName, WorkflowType


@scenario(WorkflowType.TENANT_PROVISIONING)
async def provisioning(h: Harness) -> list[Recorded]:
    from contracts.auth import AuthActivity
    from contracts.tenant import Plan, TenantProvisioningInput
    from contracts.user import UserActivity

    _, alice = _alice()
    ok, _ = await h.start(
        alice,
        WorkflowType.TENANT_PROVISIONING,
        TenantProvisioningInput(tenant_id=_unique("new"), name="New Co", plan=Plan.PROFESSIONAL),
    )
    await h.completes(alice, ok)
    bad, _ = await h.start(
        alice,
        WorkflowType.TENANT_PROVISIONING,
        TenantProvisioningInput(tenant_id=_unique("fail"), name="Failing Co"),
        fail=UserActivity.UPSERT_MEMBERSHIP,
    )
    failed = await h.fails(alice, bad)
    _compensated(failed, "create_tenant")
    cancelled, started = await h.start(
        alice,
        WorkflowType.TENANT_PROVISIONING,
        TenantProvisioningInput(tenant_id=_unique("cancel"), name="Cancelled Co"),
        hang=AuthActivity.GRANT_TENANT_ACCESS,
    )
    await h.cancel(alice, cancelled, started)
    return [
        *recorded(WorkflowType.TENANT_PROVISIONING, "success", ok),
        *recorded(WorkflowType.TENANT_PROVISIONING, "failure-compensated", bad),
        *recorded(WorkflowType.TENANT_PROVISIONING, "cancelled-compensated", cancelled),
    ]


async def _session(h: Harness, user_id: str, tenant_id: str) -> str:
    from services.auth.models import SessionRecord

    now = datetime.now(UTC)
    record = SessionRecord(
        id=str(uuid.uuid4()),
        user_id=user_id,
        tenant_id=tenant_id,
        created_at=now,
        expires_at=now + timedelta(days=1),
        refresh_token_hash="x" * 64,
    )
    await _auth_parts(h).sessions.create(record)
    return record.id


@scenario(WorkflowType.TENANT_SWITCHING)
async def switching(h: Harness) -> list[Recorded]:
    from contracts.auth import AuthActivity
    from contracts.tenant import TenantSwitchingInput

    alice_id, alice = _alice()

    def switch(session_id: str) -> TenantSwitchingInput:
        return TenantSwitchingInput(
            user_id=alice_id,
            from_tenant_id="acme",
            to_tenant_id="globex",
            current_session_id=session_id,
        )

    ok, _ = await h.start(
        alice, WorkflowType.TENANT_SWITCHING, switch(await _session(h, alice_id, "acme"))
    )
    await h.completes(alice, ok)
    bad, _ = await h.start(
        alice,
        WorkflowType.TENANT_SWITCHING,
        switch(await _session(h, alice_id, "acme")),
        fail=AuthActivity.INVALIDATE_SESSION,
    )
    failed = await h.fails(alice, bad)
    _compensated(failed, "update_current_tenant")
    return [
        *recorded(WorkflowType.TENANT_SWITCHING, "success", ok),
        *recorded(WorkflowType.TENANT_SWITCHING, "failure-compensated", bad),
    ]


@scenario(WorkflowType.TENANT_UPGRADE)
async def upgrade(h: Harness) -> list[Recorded]:
    from contracts.tenant import Plan, TenantTask, TenantUpgradeInput

    alice_id, _ = _alice()
    runs: list[Recorded] = []
    for path, fault in (("success", None), ("failure-compensated", TenantTask.APPLY_PLAN)):
        tenant_id = await _new_tenant(h, members={alice_id: OWNER})
        owner = RequestContext(user_id=alice_id, tenant_id=tenant_id, roles=OWNER)
        workflow_id, _ = await h.start(
            owner,
            WorkflowType.TENANT_UPGRADE,
            TenantUpgradeInput(tenant_id=tenant_id, plan=Plan.PROFESSIONAL),
            fail=fault,
        )
        if fault is None:
            await h.completes(owner, workflow_id)
        else:
            failed = await h.fails(owner, workflow_id)
            _compensated(failed, "create_invoice")
        runs += recorded(WorkflowType.TENANT_UPGRADE, path, workflow_id)
    return runs


@scenario(WorkflowType.TENANT_SUSPENSION)
async def suspension(h: Harness) -> list[Recorded]:
    """Resumed by signal (after one from a non-owner, ignored), resumed by its timer, and
    cancelled while suspended (compensated)."""
    from contracts.tenant import ResumeTenantSignal, TenantSuspensionInput

    alice_id, _ = _alice()
    runs: list[Recorded] = []
    for path in ("resumed-by-signal", "resumed-after-timeout", "cancelled-compensated"):
        member = str(uuid.uuid4())
        tenant_id = await _new_tenant(h, members={alice_id: OWNER, member: ("member",)})
        owner = RequestContext(user_id=alice_id, tenant_id=tenant_id, roles=OWNER)
        resume_after = 1 if path == "resumed-after-timeout" else None
        workflow_id, _ = await h.start(
            owner,
            WorkflowType.TENANT_SUSPENSION,
            TenantSuspensionInput(tenant_id=tenant_id, resume_after_seconds=resume_after),
        )
        if path == "resumed-after-timeout":
            await h.completes(owner, workflow_id)
        else:
            await h.event(owner, workflow_id, _waiting("suspended"))
            if path == "resumed-by-signal":
                someone = RequestContext(user_id=member, tenant_id=tenant_id, roles=("member",))
                await h.signal(
                    someone,
                    workflow_id,
                    SignalName.RESUME_TENANT,
                    ResumeTenantSignal(requested_by=member),
                )
                await h.signal(
                    owner,
                    workflow_id,
                    SignalName.RESUME_TENANT,
                    ResumeTenantSignal(requested_by=alice_id),
                )
                await h.completes(owner, workflow_id)
            else:
                await h.ops.cancel(owner, workflow_id, "recording the cancellation path")
                await h.fails(owner, workflow_id)
                await h.expect_status(workflow_id, WorkflowExecutionStatus.CANCELED)
        runs += recorded(WorkflowType.TENANT_SUSPENSION, path, workflow_id)
    return runs


@scenario(WorkflowType.TENANT_MEMBERSHIP_SYNC)
async def membership_sync(h: Harness) -> list[Recorded]:
    """A member added, given other roles and removed; an addition failing at its last step
    (the user projection) undoes the tenant row and the grant."""
    from contracts.tenant import MembershipChange, TenantMembershipSyncInput
    from contracts.user import UserActivity

    alice_id, _ = _alice()
    tenant_id = await _new_tenant(h, members={alice_id: OWNER})
    owner = RequestContext(user_id=alice_id, tenant_id=tenant_id, roles=OWNER)
    member = await _new_member(h, tenant_id="acme")
    runs: list[Recorded] = []
    for path, change, roles in (
        ("add-success", MembershipChange.ADD, ["member"]),
        ("set-roles-success", MembershipChange.SET_ROLES, ["admin", "member"]),
        ("remove-success", MembershipChange.REMOVE, []),
    ):
        workflow_id, _ = await h.start(
            owner,
            WorkflowType.TENANT_MEMBERSHIP_SYNC,
            TenantMembershipSyncInput(
                tenant_id=tenant_id, user_id=member, change=change, roles=roles
            ),
        )
        await h.completes(owner, workflow_id)
        runs += recorded(WorkflowType.TENANT_MEMBERSHIP_SYNC, path, workflow_id)
    workflow_id, _ = await h.start(
        owner,
        WorkflowType.TENANT_MEMBERSHIP_SYNC,
        TenantMembershipSyncInput(
            tenant_id=tenant_id, user_id=member, change=MembershipChange.ADD, roles=["member"]
        ),
        fail=UserActivity.UPSERT_MEMBERSHIP,
    )
    _compensated(await h.fails(owner, workflow_id), "change_membership")
    return [
        *runs,
        *recorded(WorkflowType.TENANT_MEMBERSHIP_SYNC, "add-failure-compensated", workflow_id),
    ]


@scenario(WorkflowType.GET_TENANT_DATA)
async def tenant_read(h: Harness) -> list[Recorded]:
    from contracts.tenant import GetTenantDataInput

    _, alice = _alice()
    workflow_id, _ = await h.start(
        alice, WorkflowType.GET_TENANT_DATA, GetTenantDataInput(tenant_id="acme")
    )
    await h.completes(alice, workflow_id)
    return recorded(WorkflowType.GET_TENANT_DATA, "success", workflow_id)
