"""The tenant service's sagas: provisioning, switching, upgrade, membership sync, suspension."""

from __future__ import annotations

import uuid
from typing import Any

from adx.histories import OWNER, Harness, _alice, _new_member, _new_tenant, _session
from contracts.auth import AuthActivity
from contracts.context import RequestContext
from contracts.names import WorkflowType
from contracts.tenant import (
    MembershipChange,
    Plan,
    SuspensionOutcome,
    TenantActivity,
    TenantMembershipSyncInput,
    TenantProvisioningInput,
    TenantSuspensionInput,
    TenantSuspensionResult,
    TenantSwitchingInput,
    TenantSwitchingResult,
    TenantTask,
    TenantUpgradeInput,
)
from contracts.user import UserActivity
from tests.faults.harness import Prepared, SagaSpec, SagaStep, mentions

# Provisioning -------------------------------------------------------------------------------


async def prepare_provisioning(h: Harness) -> Prepared:
    _, alice = _alice()
    tenant_id = f"new-{uuid.uuid4().hex[:8]}"
    provision = TenantProvisioningInput(tenant_id=tenant_id, name="New Co", plan=Plan.PROFESSIONAL)
    return Prepared(alice, provision, {"tenant_id": tenant_id, "owner": alice.user_id})


async def provisioned(h: Harness, prepared: Prepared, result: Any) -> None:
    tenant_id, owner = prepared.facts["tenant_id"], prepared.facts["owner"]
    assert len(await mentions(h, "tenant", "tenant_tenants", tenant_id)) == 1
    assert await mentions(h, "tenant", "tenant_roles", tenant_id)
    assert await mentions(h, "tenant", "tenant_quotas", tenant_id)
    assert len(await mentions(h, "tenant", "tenant_memberships", tenant_id, owner)) == 1
    assert len(await mentions(h, "auth", "auth_tenant_grants", owner, tenant_id)) == 1
    assert len(await mentions(h, "user", "user_memberships", owner, tenant_id)) == 1


PROVISIONING = SagaSpec(
    workflow_type=WorkflowType.TENANT_PROVISIONING,
    steps=(
        SagaStep("create_tenant", TenantTask.CREATE_TENANT),
        SagaStep("create_default_roles", TenantTask.CREATE_DEFAULT_ROLES),
        SagaStep("set_quotas", TenantTask.SET_QUOTAS),
        SagaStep("add_owner_membership", TenantActivity.ADD_MEMBER),
        SagaStep("grant_owner_access", AuthActivity.GRANT_TENANT_ACCESS),
        SagaStep("sync_user_projection", UserActivity.UPSERT_MEMBERSHIP),
        SagaStep("audit_provisioning", TenantTask.LOAD_TENANT_DATA, compensated=False, read=True),
    ),
    prepare=prepare_provisioning,
    applied=provisioned,
    # An undone tenant's id stays retired for everyone but its maker (the takeover guard).
    bookkeeping=frozenset({("tenant", "tenant_retired_ids")}),
)

# Switching ----------------------------------------------------------------------------------


async def prepare_switching(h: Harness) -> Prepared:
    user_id = str(uuid.uuid4())
    source = await _new_tenant(h, members={user_id: OWNER})
    target = await _new_tenant(h, members={user_id: ("member",)})
    session_id = await _session(h, user_id, source)
    context = RequestContext(user_id=user_id, tenant_id=source, roles=OWNER)
    switch = TenantSwitchingInput(
        user_id=user_id, from_tenant_id=source, to_tenant_id=target, current_session_id=session_id
    )
    return Prepared(context, switch, {"user_id": user_id, "target": target, "old": session_id})


async def switched(h: Harness, prepared: Prepared, result: Any) -> None:
    user_id, target = prepared.facts["user_id"], prepared.facts["target"]
    session = TenantSwitchingResult.model_validate(result).session_id
    assert len(await mentions(h, "tenant", "tenant_current", user_id, target)) == 1
    assert len(await mentions(h, "auth", "auth_sessions", session, target)) == 1
    (old,) = await mentions(h, "auth", "auth_sessions", prepared.facts["old"])
    assert old["revoked_at"] is not None


SWITCHING = SagaSpec(
    workflow_type=WorkflowType.TENANT_SWITCHING,
    steps=(
        SagaStep("validate_access", TenantTask.CHECK_SWITCH_ACCESS, compensated=False, read=True),
        SagaStep(
            "capture_session",
            AuthActivity.VALIDATE_CREDENTIALS,
            compensated=False,
            read=True,
            nth=2,
        ),
        SagaStep("update_current_tenant", TenantTask.SET_CURRENT_TENANT),
        SagaStep("create_session", AuthActivity.CREATE_SESSION),
        SagaStep("load_tenant_data", TenantTask.LOAD_TENANT_DATA, compensated=False, read=True),
        SagaStep("invalidate_old_session", AuthActivity.INVALIDATE_SESSION),
    ),
    prepare=prepare_switching,
    applied=switched,
)

# Upgrade ------------------------------------------------------------------------------------


async def prepare_upgrade(h: Harness) -> Prepared:
    alice_id, _ = _alice()
    tenant_id = await _new_tenant(h, members={alice_id: OWNER})
    owner = RequestContext(user_id=alice_id, tenant_id=tenant_id, roles=OWNER)
    upgrade = TenantUpgradeInput(tenant_id=tenant_id, plan=Plan.ENTERPRISE)
    return Prepared(owner, upgrade, {"tenant_id": tenant_id})


async def upgraded(h: Harness, prepared: Prepared, result: Any) -> None:
    tenant_id = prepared.facts["tenant_id"]
    assert len(await mentions(h, "tenant", "tenant_tenants", tenant_id, "'enterprise'")) == 1
    assert len(await mentions(h, "tenant", "tenant_invoices", tenant_id, "'paid'")) == 1


UPGRADE = SagaSpec(
    workflow_type=WorkflowType.TENANT_UPGRADE,
    steps=(
        SagaStep("prepare_upgrade", TenantTask.PREPARE_UPGRADE, compensated=False, read=True),
        SagaStep("create_invoice", TenantTask.CREATE_INVOICE),
        SagaStep("charge", TenantTask.CHARGE_INVOICE),
        SagaStep("apply_plan", TenantTask.APPLY_PLAN),
    ),
    prepare=prepare_upgrade,
    applied=upgraded,
)

# Membership sync (an addition) --------------------------------------------------------------


async def prepare_membership(h: Harness) -> Prepared:
    alice_id, _ = _alice()
    tenant_id = await _new_tenant(h, members={alice_id: OWNER})
    owner = RequestContext(user_id=alice_id, tenant_id=tenant_id, roles=OWNER)
    member = await _new_member(h, tenant_id="acme")
    add = TenantMembershipSyncInput(
        tenant_id=tenant_id, user_id=member, change=MembershipChange.ADD, roles=["member"]
    )
    return Prepared(owner, add, {"tenant_id": tenant_id, "member": member})


async def added(h: Harness, prepared: Prepared, result: Any) -> None:
    tenant_id, member = prepared.facts["tenant_id"], prepared.facts["member"]
    assert len(await mentions(h, "tenant", "tenant_memberships", tenant_id, member)) == 1
    assert len(await mentions(h, "auth", "auth_tenant_grants", member, tenant_id)) == 1
    assert len(await mentions(h, "user", "user_memberships", member, tenant_id)) == 1


MEMBERSHIP_SYNC = SagaSpec(
    workflow_type=WorkflowType.TENANT_MEMBERSHIP_SYNC,
    steps=(
        SagaStep("read_membership", TenantTask.READ_MEMBERSHIP, compensated=False, read=True),
        SagaStep("change_membership", TenantTask.CHANGE_MEMBERSHIP),
        SagaStep("grant_access", AuthActivity.GRANT_TENANT_ACCESS),
        SagaStep("sync_user_projection", UserActivity.UPSERT_MEMBERSHIP),
    ),
    prepare=prepare_membership,
    applied=added,
)

# Suspension (resumed by its timer) ------------------------------------------------------------


async def prepare_suspension(h: Harness) -> Prepared:
    alice_id, _ = _alice()
    member = str(uuid.uuid4())
    tenant_id = await _new_tenant(h, members={alice_id: OWNER, member: ("member",)})
    owner = RequestContext(user_id=alice_id, tenant_id=tenant_id, roles=OWNER)
    suspend = TenantSuspensionInput(tenant_id=tenant_id, resume_after_seconds=1)
    grants = await grants_of(h, tenant_id)
    return Prepared(owner, suspend, {"tenant_id": tenant_id, "grants": grants})


async def grants_of(h: Harness, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's auth grants, as they are (but when they were last written)."""
    rows = await mentions(h, "auth", "auth_tenant_grants", f"'{tenant_id}'")
    return sorted(
        ({key: value for key, value in row.items() if key != "updated_at"} for row in rows),
        key=repr,
    )


async def resumed(h: Harness, prepared: Prepared, result: Any) -> None:
    tenant_id = prepared.facts["tenant_id"]
    outcome = TenantSuspensionResult.model_validate(result)
    assert outcome.outcome is SuspensionOutcome.RESUMED_AFTER_TIMEOUT
    assert len(outcome.suspended_members) == 2
    assert len(await mentions(h, "tenant", "tenant_tenants", tenant_id, "'active'")) == 1
    # Resumed, every member has the grant they had (the same roles, the same standing).
    assert await grants_of(h, tenant_id) == prepared.facts["grants"]


SUSPENSION = SagaSpec(
    workflow_type=WorkflowType.TENANT_SUSPENSION,
    steps=(
        SagaStep("mark_suspended", TenantTask.SET_TENANT_STATUS),
        # suspend_access: the members, then for each its grant suspended in place (which
        # ends its sessions); its compensation (every member's grant back) comes before it.
        SagaStep(
            "list_members",
            TenantTask.LIST_MEMBERS,
            compensated=False,
            read=True,
            registers_before=("suspend_access",),
        ),
        SagaStep("suspend_grant", AuthActivity.GRANT_TENANT_ACCESS, compensated=False),
        SagaStep("suspend_grant_2", AuthActivity.GRANT_TENANT_ACCESS, compensated=False, nth=2),
        # resume (after the timer): the grants back, then the tenant active.
        SagaStep("reactivate_grant", AuthActivity.GRANT_TENANT_ACCESS, compensated=False, nth=3),
        SagaStep("mark_active", TenantTask.SET_TENANT_STATUS, compensated=False, nth=2),
    ),
    prepare=prepare_suspension,
    applied=resumed,
)

SPECS = (PROVISIONING, SWITCHING, UPGRADE, MEMBERSHIP_SYNC, SUSPENSION)
