"""The user service's sagas: profile sync (update, projections, log), deactivation
(profile, memberships, account, notice, log, then the grace period) and a bulk operation
(one idempotent item per user)."""

from __future__ import annotations

import uuid
from typing import Any

from adx.histories import Harness, _alice, _new_member
from contracts.auth import AuthActivity
from contracts.context import RequestContext
from contracts.names import WorkflowType
from contracts.user import (
    BulkAction,
    BulkUserOperationInput,
    BulkUserOperationResult,
    DeactivationOutcome,
    ProfileChanges,
    UserActivity,
    UserDeactivationInput,
    UserDeactivationResult,
    UserProfileSyncInput,
    UserProfileSyncResult,
)
from tests.faults.harness import (
    Prepared,
    SagaSpec,
    SagaStep,
    mentions,
)

# Profile sync -------------------------------------------------------------------------------


async def prepare_sync(h: Harness) -> Prepared:
    member = await _new_member(h)
    context = RequestContext(user_id=member, tenant_id="acme", roles=("member",))
    name = f"Renamed {uuid.uuid4().hex[:6]}"
    change = UserProfileSyncInput(user_id=member, changes=ProfileChanges(display_name=name))
    return Prepared(context, change, {"name": name})


async def synced(h: Harness, prepared: Prepared, result: Any) -> None:
    profile = UserProfileSyncResult.model_validate(result).profile
    name = prepared.facts["name"]
    assert profile.display_name == name
    assert len(await mentions(h, "user", "user_profiles", profile.user_id, name)) == 1
    # The directory projection shows the new name in the member's tenant.
    assert len(await mentions(h, "user", "user_memberships", profile.user_id, name)) == 1
    assert len(await mentions(h, "user", "user_activity_log", profile.user_id)) == 1


PROFILE_SYNC = SagaSpec(
    workflow_type=WorkflowType.USER_PROFILE_SYNC,
    steps=(
        SagaStep("load_profile", UserActivity.GET_PROFILE, compensated=False, read=True),
        SagaStep("update_profile", UserActivity.UPDATE_PROFILE),
        # Undone by update_profile's compensation, which syncs from the restored profile.
        SagaStep("sync_projections", UserActivity.SYNC_PROFILE_PROJECTIONS, compensated=False),
        SagaStep("record_activity", UserActivity.RECORD_ACTIVITY, compensated=False),
    ),
    prepare=prepare_sync,
    applied=synced,
    pivot="record_activity",
)

# Deactivation -------------------------------------------------------------------------------


async def prepare_deactivation(h: Harness) -> Prepared:
    _, alice = _alice()
    target = await _new_member(h)
    deactivate = UserDeactivationInput(user_id=target, tenant_id="acme", grace_period_seconds=1)
    return Prepared(alice, deactivate, {"user_id": target})


async def deactivated(h: Harness, prepared: Prepared, result: Any) -> None:
    outcome = UserDeactivationResult.model_validate(result)
    user_id = prepared.facts["user_id"]
    assert outcome.outcome is DeactivationOutcome.FINALIZED
    assert len(await mentions(h, "user", "user_profiles", user_id, "'deactivated'")) == 1
    assert len(await mentions(h, "user", "user_memberships", user_id, "'suspended'")) == 1
    assert len(await mentions(h, "auth", "auth_users", user_id, "'deactivated'")) == 1
    assert len(await mentions(h, "user", "user_email_outbox", "deactivated")) >= 1


DEACTIVATION = SagaSpec(
    workflow_type=WorkflowType.USER_DEACTIVATION,
    steps=(
        SagaStep("deactivate_profile", UserActivity.DEACTIVATE_PROFILE),
        SagaStep("suspend_memberships", UserActivity.SUSPEND_MEMBERSHIPS),
        SagaStep("deactivate_account", AuthActivity.SET_ACCOUNT_STATUS),
        SagaStep("notify_user", UserActivity.SEND_ACCOUNT_NOTICE, compensated=False),
        SagaStep("record_activity", UserActivity.RECORD_ACTIVITY, compensated=False),
    ),
    prepare=prepare_deactivation,
    applied=deactivated,
    # What was said and logged stays said: the notice and the audit trail of the user.
    bookkeeping=frozenset({("user", "user_email_outbox"), ("user", "user_activity_log")}),
)

# Bulk operation -----------------------------------------------------------------------------

BULK_USERS = 3


async def prepare_bulk(h: Harness) -> Prepared:
    _, alice = _alice()
    users = [await _new_member(h) for _ in range(BULK_USERS)]
    # Two at a time: the first two items run side by side, the third after them.
    bulk = BulkUserOperationInput(
        tenant_id="acme",
        action=BulkAction.UPDATE_LOCALE,
        user_ids=users,
        locale="de",
        batch_size=2,
    )
    return Prepared(alice, bulk, {"users": users})


async def bulk_applied(h: Harness, prepared: Prepared, result: Any) -> None:
    outcome = BulkUserOperationResult.model_validate(result)
    assert outcome.failed == [], outcome.failed
    assert outcome.succeeded == prepared.facts["users"]
    for user_id in prepared.facts["users"]:
        assert len(await mentions(h, "user", "user_profiles", user_id, "'de'")) == 1
        # Changed once, however many runs it took.
        assert len(await mentions(h, "user", "user_activity_log", user_id, "locale set to de")) == 1


async def one_item_reported(h: Harness, prepared: Prepared, result: Any) -> None:
    outcome = BulkUserOperationResult.model_validate(result)
    (failure,) = outcome.failed
    assert len(outcome.succeeded) == BULK_USERS - 1
    # The failed item changed nothing; the others are applied.
    assert not await mentions(h, "user", "user_profiles", failure.user_id, "'de'")
    for user_id in outcome.succeeded:
        assert len(await mentions(h, "user", "user_profiles", user_id, "'de'")) == 1


BULK = SagaSpec(
    workflow_type=WorkflowType.BULK_USER_OPERATION,
    steps=tuple(
        SagaStep(f"item_{n}", UserActivity.APPLY_BULK_ITEM, compensated=False, nth=n, item=True)
        for n in range(1, BULK_USERS + 1)
    ),
    prepare=prepare_bulk,
    applied=bulk_applied,
    # Each item stands on its own (applied at most once per operation and user): a cancel
    # stops the rest, a failing item is reported; the request made again finishes it.
    resumable=True,
    reported=one_item_reported,
)

SPECS = (PROFILE_SYNC, DEACTIVATION, BULK)
