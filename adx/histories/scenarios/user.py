"""The user service's scenarios: profile sync, deactivation (restored, finalized, failed,
cancelled), bulk operations and the reads."""

from __future__ import annotations

import uuid

from temporalio.client import WorkflowExecutionStatus

from adx.histories.scenarios.fixtures import _alice, _new_member, _waiting
from adx.histories.scenarios.registry import Recorded, _compensated, recorded, scenario
from adx.histories.stack import Harness
from contracts.context import RequestContext
from contracts.names import SignalName, WorkflowType


@scenario(WorkflowType.USER_PROFILE_SYNC)
async def profile_sync(h: Harness) -> list[Recorded]:
    from contracts.user import ProfileChanges, UserActivity, UserProfileSyncInput

    alice_id, alice = _alice()
    input = UserProfileSyncInput(
        user_id=alice_id, changes=ProfileChanges(display_name="Alice Recorded", locale="fr")
    )
    ok, _ = await h.start(alice, WorkflowType.USER_PROFILE_SYNC, input)
    await h.completes(alice, ok)
    input = UserProfileSyncInput(user_id=alice_id, changes=ProfileChanges(title="Recorder"))
    bad, _ = await h.start(
        alice, WorkflowType.USER_PROFILE_SYNC, input, fail=UserActivity.RECORD_ACTIVITY
    )
    failed = await h.fails(alice, bad)
    _compensated(failed, "update_profile")
    return [
        *recorded(WorkflowType.USER_PROFILE_SYNC, "success", ok),
        *recorded(WorkflowType.USER_PROFILE_SYNC, "failure-compensated", bad),
    ]


@scenario(WorkflowType.USER_DEACTIVATION)
async def deactivation_restored(h: Harness) -> list[Recorded]:
    """Deactivated, then restore_user: first from a plain member (ignored), then an admin."""
    from contracts.user import RestoreUserSignal, UserDeactivationInput

    alice_id, alice = _alice()
    target = await _new_member(h)
    input = UserDeactivationInput(user_id=target, tenant_id="acme", grace_period_seconds=600)
    workflow_id, _ = await h.start(alice, WorkflowType.USER_DEACTIVATION, input)
    await h.event(alice, workflow_id, _waiting("grace_period"))
    stranger = RequestContext(user_id=target, tenant_id="acme", roles=("member",))
    await h.signal(
        stranger, workflow_id, SignalName.RESTORE_USER, RestoreUserSignal(requested_by=target)
    )
    await h.signal(
        alice, workflow_id, SignalName.RESTORE_USER, RestoreUserSignal(requested_by=alice_id)
    )
    await h.completes(alice, workflow_id)
    return recorded(WorkflowType.USER_DEACTIVATION, "restored-by-signal", workflow_id)


@scenario(WorkflowType.USER_DEACTIVATION)
async def deactivation_finalized(h: Harness) -> list[Recorded]:
    """Nobody restores: the grace period's timer fires and the deactivation is final."""
    from contracts.user import UserDeactivationInput

    _, alice = _alice()
    target = await _new_member(h)
    input = UserDeactivationInput(user_id=target, tenant_id="acme", grace_period_seconds=1)
    workflow_id, _ = await h.start(alice, WorkflowType.USER_DEACTIVATION, input)
    await h.completes(alice, workflow_id)
    return recorded(WorkflowType.USER_DEACTIVATION, "finalized-after-timeout", workflow_id)


@scenario(WorkflowType.USER_DEACTIVATION)
async def deactivation_failed(h: Harness) -> list[Recorded]:
    from contracts.user import UserActivity, UserDeactivationInput

    _, alice = _alice()
    target = await _new_member(h)
    input = UserDeactivationInput(user_id=target, tenant_id="acme", grace_period_seconds=600)
    workflow_id, _ = await h.start(
        alice, WorkflowType.USER_DEACTIVATION, input, fail=UserActivity.SEND_ACCOUNT_NOTICE
    )
    failed = await h.fails(alice, workflow_id)
    _compensated(failed, "deactivate_profile")
    return recorded(WorkflowType.USER_DEACTIVATION, "failure-compensated", workflow_id)


@scenario(WorkflowType.USER_DEACTIVATION)
async def deactivation_cancelled(h: Harness) -> list[Recorded]:
    """Cancelled during the grace period: the deactivation is undone."""
    from contracts.user import UserDeactivationInput

    _, alice = _alice()
    target = await _new_member(h)
    input = UserDeactivationInput(user_id=target, tenant_id="acme", grace_period_seconds=600)
    workflow_id, _ = await h.start(alice, WorkflowType.USER_DEACTIVATION, input)
    await h.event(alice, workflow_id, _waiting("grace_period"))
    await h.ops.cancel(alice, workflow_id, "recording the cancellation path")
    await h.fails(alice, workflow_id)
    await h.expect_status(workflow_id, WorkflowExecutionStatus.CANCELED)
    return recorded(WorkflowType.USER_DEACTIVATION, "cancelled-compensated", workflow_id)


@scenario(WorkflowType.BULK_USER_OPERATION)
async def bulk_partial_failure(h: Harness) -> list[Recorded]:
    """Two members get the new locale; an unknown user fails alone and is reported."""
    from contracts.user import BulkAction, BulkUserOperationInput

    _, alice = _alice()
    users = [await _new_member(h), await _new_member(h), str(uuid.uuid4())]
    input = BulkUserOperationInput(
        tenant_id="acme", action=BulkAction.UPDATE_LOCALE, user_ids=users, locale="de", batch_size=2
    )
    workflow_id, _ = await h.start(alice, WorkflowType.BULK_USER_OPERATION, input)
    result = await h.completes(alice, workflow_id)
    assert len(result["failed"]) == 1, result
    return recorded(WorkflowType.BULK_USER_OPERATION, "partial-failure", workflow_id)


@scenario(WorkflowType.GET_USER_PROFILE, WorkflowType.GET_RECENT_ACTIVITY)
async def user_reads(h: Harness) -> list[Recorded]:
    from contracts.user import GetRecentActivityInput, GetUserProfileInput

    alice_id, alice = _alice()
    profile, _ = await h.start(
        alice, WorkflowType.GET_USER_PROFILE, GetUserProfileInput(user_id=alice_id)
    )
    await h.completes(alice, profile)
    recent, _ = await h.start(
        alice, WorkflowType.GET_RECENT_ACTIVITY, GetRecentActivityInput(user_id=alice_id)
    )
    await h.completes(alice, recent)
    return [
        *recorded(WorkflowType.GET_USER_PROFILE, "success", profile),
        *recorded(WorkflowType.GET_RECENT_ACTIVITY, "success", recent),
    ]
