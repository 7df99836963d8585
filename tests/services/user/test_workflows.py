"""The user workflows on the real dev server, run by the service's own worker: success paths,
compensation on failure and cancellation, the grace period, partial failures of bulk
operations, and the read workflows BFFs aggregate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError

from adx.settings import Settings
from contracts.auth import UserStatus as AuthUserStatus
from contracts.errors import ErrorKind
from contracts.names import TaskQueue, WorkflowType
from contracts.progress import EventKind
from contracts.user import (
    ActivityEntry,
    ActivityKind,
    BulkAction,
    BulkItemFailure,
    BulkUserOperationInput,
    BulkUserOperationResult,
    DeactivationOutcome,
    GetRecentActivityInput,
    GetUserProfileInput,
    MembershipStatus,
    ProfileChanges,
    RecentActivity,
    RecordActivityInput,
    UserActivity,
    UserDeactivationResult,
    UserProfile,
    UserProfileSyncInput,
    UserProfileSyncResult,
    UserStatus,
)
from services.user.activities import UserActivities
from services.user.service import SERVICE
from services.user.store import UserStore, activity_log, profiles
from services.user.workflows import WORKFLOWS
from tests.services.user.support import (
    ALICE,
    ALICE_IN_ACME,
    BOB_IN_GLOBEX,
    add_member,
    bearer,
    member_context,
    wait_for_event,
)
from tests.support.services import RunningService, running_service
from tests.support.smtp import Mailbox
from tests.support.stand_ins import AuthStandIn
from workflow_client.errors import WorkflowFailed
from workflow_client.operations import WorkflowOperations
from workflow_client.worker import create_worker

BUDGET = timedelta(seconds=30)


async def _statuses(store: UserStore, user_id: str) -> dict[str, MembershipStatus]:
    return {m.tenant_id: m.status for m in await store.memberships_of(user_id)}


async def _profile(store: UserStore, user_id: str) -> UserProfile:
    profile = await store.get_profile(user_id)
    assert profile is not None
    return profile


async def _steps(ops: WorkflowOperations, operation_id: str, kind: EventKind) -> list[str | None]:
    snapshot = await ops.progress(ALICE_IN_ACME, operation_id)
    return [event.step for event in snapshot.report.events if event.kind is kind]


# Profile sync ---------------------------------------------------------------------------


async def test_profile_sync_updates_the_profile_and_every_projection(
    service: RunningService, service_store: UserStore
) -> None:
    ops = service.runtime.operations
    outcome = await ops.execute(
        ALICE_IN_ACME,
        WorkflowType.USER_PROFILE_SYNC.value,
        UserProfileSyncInput(
            user_id=ALICE.id, changes=ProfileChanges(display_name="Alice Zed", locale="fr")
        ),
        budget=BUDGET,
        result_type=UserProfileSyncResult,
    )
    result = outcome.result
    assert result is not None
    assert result.synced_tenants == ["acme", "globex"]
    assert result.changed == ["display_name", "locale"]
    assert (result.profile.display_name, result.profile.locale) == ("Alice Zed", "fr")
    for tenant in ("acme", "globex"):
        membership = await service_store.membership(ALICE.id, tenant)
        assert membership is not None
        assert membership.display_name == "Alice Zed"
    entries = await service_store.recent_activity("acme", ALICE.id, 10)
    assert [(e.kind, e.actor_id) for e in entries] == [(ActivityKind.PROFILE_UPDATED, ALICE.id)]
    snapshot = await ops.progress(ALICE_IN_ACME, outcome.operation.id)
    assert (snapshot.report.progress.completed, snapshot.report.progress.total) == (4, 4)
    assert await _steps(ops, outcome.operation.id, EventKind.STEP_COMPLETED) == [
        "load_profile",
        "update_profile",
        "sync_projections",
        "record_activity",
    ]


@activity.defn(name=UserActivity.RECORD_ACTIVITY)
async def failing_record_activity(input: RecordActivityInput) -> bool:
    raise ApplicationError(
        "the activity log is unavailable", type="ExternalServiceError", non_retryable=True
    )


async def test_profile_sync_failure_restores_the_previous_profile(
    service_settings: Settings,
) -> None:
    # The real workflows and activities, except the last step's activity, which fails.
    async with running_service(SERVICE, service_settings, worker=False) as running:
        store = UserStore(running.runtime.db)
        real = UserActivities(store, service_settings).all()
        activities = [a for a in real if a.__name__ != "record_activity"]
        activities.append(failing_record_activity)
        worker = create_worker(
            running.runtime.client,
            task_queue=TaskQueue.USER.value,
            workflows=WORKFLOWS,
            activities=activities,
        )
        ops = running.runtime.operations
        async with worker:
            with pytest.raises(WorkflowFailed) as caught:
                await ops.execute(
                    ALICE_IN_ACME,
                    WorkflowType.USER_PROFILE_SYNC.value,
                    UserProfileSyncInput(
                        user_id=ALICE.id, changes=ProfileChanges(display_name="Mallory")
                    ),
                    budget=BUDGET,
                    result_type=UserProfileSyncResult,
                )
            failure = caught.value
            assert (failure.kind, failure.message) == (
                ErrorKind.EXTERNAL_SERVICE,
                "the activity log is unavailable",
            )
            assert failure.compensations == ["update_profile"]
            profile = await _profile(store, ALICE.id)
            # Changed (v2), then restored (v3): the old name is back, in the projection too.
            assert (profile.display_name, profile.version) == ("Alice Anderson", 3)
            for tenant in ("acme", "globex"):
                membership = await store.membership(ALICE.id, tenant)
                assert membership is not None
                assert membership.display_name == "Alice Anderson"
            assert await store.count(activity_log) == 0
            compensated = await _steps(ops, failure.operation_id, EventKind.COMPENSATION_COMPLETED)
            assert compensated == ["update_profile"]


# Deactivation ---------------------------------------------------------------------------


async def _deactivate(
    http: httpx.AsyncClient, settings: Settings, user_id: str, key: str | None = None, **body: Any
) -> str:
    response = await http.post(
        f"/api/user/users/{user_id}/deactivate",
        headers={**bearer(settings, ALICE_IN_ACME), **({"Idempotency-Key": key} if key else {})},
        json=body,
    )
    assert response.status_code == 202, response.text
    operation_id: str = response.json()["operation_id"]
    return operation_id


async def test_deactivation_then_restore_within_the_grace_period(
    http: httpx.AsyncClient,
    service: RunningService,
    service_settings: Settings,
    service_store: UserStore,
    auth_stand_in: AuthStandIn,
    smtp_server: Mailbox,
) -> None:
    ops = service.runtime.operations
    carol = await add_member(service_store, "carol", {"acme": ("member",), "globex": ("member",)})
    email = (await _profile(service_store, carol)).email
    operation_id = await _deactivate(
        http, service_settings, carol, key="offboard-carol", reason="left the company"
    )
    await wait_for_event(ops, ALICE_IN_ACME, operation_id, lambda e: e.step == "grace_period")
    # The same request again is the same operation; a new one is a conflict.
    assert await _deactivate(http, service_settings, carol, key="offboard-carol") == operation_id
    again = await http.post(
        f"/api/user/users/{carol}/deactivate", headers=bearer(service_settings, ALICE_IN_ACME)
    )
    assert again.status_code == 409

    profile = await _profile(service_store, carol)
    assert profile.status is UserStatus.DEACTIVATED
    assert profile.restore_deadline is not None
    assert profile.restore_deadline > datetime.now(UTC) + timedelta(days=6)
    assert await _statuses(service_store, carol) == {
        "acme": MembershipStatus.SUSPENDED,
        "globex": MembershipStatus.SUSPENDED,
    }
    assert auth_stand_in.calls == [(carol, AuthUserStatus.DEACTIVATED, "acme")]
    [notice] = await smtp_server.wait_for(email, 1)
    assert notice["Subject"] == "Your ADX Core account has been deactivated"
    as_admin = bearer(service_settings, ALICE_IN_ACME)
    assert (await http.get(f"/api/user/users/{carol}", headers=as_admin)).status_code == 404

    # Only the tenant that deactivated may restore.
    from_globex = await http.post(
        f"/api/user/users/{carol}/restore", headers=bearer(service_settings, BOB_IN_GLOBEX)
    )
    assert from_globex.status_code == 404
    restore = await http.post(f"/api/user/users/{carol}/restore", headers=as_admin)
    assert restore.status_code == 202
    assert restore.json() == {"operation_id": operation_id}

    result = await ops.result(ALICE_IN_ACME, operation_id, result_type=UserDeactivationResult)
    assert result.outcome is DeactivationOutcome.RESTORED
    assert result.restored_by == ALICE.id
    assert result.suspended_tenants == ["acme", "globex"]
    assert (await _profile(service_store, carol)).status is UserStatus.ACTIVE
    assert await _statuses(service_store, carol) == {
        "acme": MembershipStatus.ACTIVE,
        "globex": MembershipStatus.ACTIVE,
    }
    mails = await smtp_server.wait_for(email, 2)
    assert [m["Subject"] for m in mails] == [
        "Your ADX Core account has been deactivated",
        "Your ADX Core account has been restored",
    ]
    assert auth_stand_in.calls == [
        (carol, AuthUserStatus.DEACTIVATED, "acme"),
        (carol, AuthUserStatus.ACTIVE, "acme"),
    ]
    kinds = [e.kind for e in await service_store.recent_activity("acme", carol, 10)]
    assert kinds == [ActivityKind.USER_RESTORED, ActivityKind.USER_DEACTIVATED]
    again = await http.post(f"/api/user/users/{carol}/restore", headers=as_admin)
    assert again.status_code == 409


async def test_deactivation_becomes_final_after_the_grace_period(
    http: httpx.AsyncClient,
    service: RunningService,
    service_settings: Settings,
    service_store: UserStore,
    auth_stand_in: AuthStandIn,
) -> None:
    ops = service.runtime.operations
    carol = await add_member(service_store, "carol")
    operation_id = await _deactivate(http, service_settings, carol, grace_period_seconds=2)
    result = await ops.result(ALICE_IN_ACME, operation_id, result_type=UserDeactivationResult)
    assert result.outcome is DeactivationOutcome.FINALIZED
    # Data kept, still deactivated and suspended.
    profile = await _profile(service_store, carol)
    assert profile.status is UserStatus.DEACTIVATED
    assert profile.email.startswith("carol-")
    assert await _statuses(service_store, carol) == {"acme": MembershipStatus.SUSPENDED}
    kinds = [e.kind for e in await service_store.recent_activity("acme", carol, 10)]
    assert kinds == [ActivityKind.DEACTIVATION_FINALIZED, ActivityKind.USER_DEACTIVATED]
    late = await http.post(
        f"/api/user/users/{carol}/restore", headers=bearer(service_settings, ALICE_IN_ACME)
    )
    assert late.status_code == 409
    assert late.json()["detail"] == "the grace period is over"


async def test_cancelling_a_deactivation_compensates_in_reverse(
    http: httpx.AsyncClient,
    service: RunningService,
    service_settings: Settings,
    service_store: UserStore,
    auth_stand_in: AuthStandIn,
) -> None:
    ops = service.runtime.operations
    carol = await add_member(service_store, "carol", {"acme": ("member",), "globex": ("admin",)})
    # Suspended in globex beforehand by someone else: the compensation must leave that alone.
    await service_store.suspend_memberships(carol, "globex-admin", "globex")
    operation_id = await _deactivate(http, service_settings, carol)
    await wait_for_event(ops, ALICE_IN_ACME, operation_id, lambda e: e.step == "grace_period")
    await ops.cancel(ALICE_IN_ACME, operation_id, reason="wrong user")
    with pytest.raises(WorkflowFailed) as caught:
        await ops.result(ALICE_IN_ACME, operation_id)
    assert caught.value.message == "the operation was cancelled"
    assert await _steps(ops, operation_id, EventKind.COMPENSATION_COMPLETED) == [
        "deactivate_account",
        "suspend_memberships",
        "deactivate_profile",
    ]
    assert auth_stand_in.statuses[carol] is AuthUserStatus.ACTIVE
    assert (await _profile(service_store, carol)).status is UserStatus.ACTIVE
    assert await _statuses(service_store, carol) == {
        "acme": MembershipStatus.ACTIVE,
        "globex": MembershipStatus.SUSPENDED,
    }


async def test_a_failed_account_deactivation_compensates_the_deactivation(
    http: httpx.AsyncClient,
    service: RunningService,
    service_settings: Settings,
    service_store: UserStore,
    auth_stand_in: AuthStandIn,
    smtp_server: Mailbox,
) -> None:
    ops = service.runtime.operations
    auth_stand_in.fail_with = "the auth service refused"
    carol = await add_member(service_store, "carol")
    email = (await _profile(service_store, carol)).email
    operation_id = await _deactivate(http, service_settings, carol)
    with pytest.raises(WorkflowFailed) as caught:
        await ops.result(ALICE_IN_ACME, operation_id)
    assert caught.value.kind is ErrorKind.EXTERNAL_SERVICE
    assert caught.value.compensations == ["suspend_memberships", "deactivate_profile"]
    assert auth_stand_in.calls == [(carol, AuthUserStatus.DEACTIVATED, "acme")]
    assert (await _profile(service_store, carol)).status is UserStatus.ACTIVE
    assert await _statuses(service_store, carol) == {"acme": MembershipStatus.ACTIVE}
    assert smtp_server.to(email) == []
    assert await service_store.count(activity_log, user_id=carol) == 0


# Bulk operations ------------------------------------------------------------------------


async def test_bulk_operation_reports_failures_and_finishes_the_rest(
    http: httpx.AsyncClient,
    service: RunningService,
    service_settings: Settings,
    service_store: UserStore,
) -> None:
    ops = service.runtime.operations
    users = [await add_member(service_store, f"bulk{index}") for index in range(40)]
    outsider = await add_member(service_store, "outsider", {"globex": ("member",)})
    requested = [*users[:20], "no-such-user", outsider, ALICE.id, *users[20:]]
    response = await http.post(
        "/api/user/bulk",
        headers=bearer(service_settings, ALICE_IN_ACME),
        json={"action": "suspend", "user_ids": requested},
    )
    assert response.status_code == 202
    operation_id = response.json()["operation_id"]
    result = await ops.result(ALICE_IN_ACME, operation_id, result_type=BulkUserOperationResult)

    assert result.total == 43
    assert result.succeeded == users
    assert result.failed == [
        BulkItemFailure(user_id="no-such-user", reason="user not found"),
        BulkItemFailure(user_id=outsider, reason="user not found"),
        BulkItemFailure(user_id=ALICE.id, reason="you cannot suspend yourself"),
    ]
    for user_id in users:
        assert await _statuses(service_store, user_id) == {"acme": MembershipStatus.SUSPENDED}
    assert await _statuses(service_store, outsider) == {"globex": MembershipStatus.ACTIVE}
    assert (await _statuses(service_store, ALICE.id))["acme"] is MembershipStatus.ACTIVE
    suspended = ActivityKind.MEMBERSHIP_SUSPENDED.value
    assert await service_store.count(activity_log, kind=suspended) == 40

    snapshot = await ops.progress(ALICE_IN_ACME, operation_id)
    progress = snapshot.report.progress
    assert (progress.completed, progress.total) == (43, 43)
    failed_events = [e for e in snapshot.report.events if e.kind is EventKind.STEP_FAILED]
    assert sorted(str(e.details["user_id"]) for e in failed_events) == sorted(
        ["no-such-user", outsider, ALICE.id]
    )
    assert snapshot.report.events[-1].details == {"succeeded": 40, "failed": 3}

    # Another action on part of them: restore, one of whom was deactivated meanwhile.
    await service_store.deactivate_profile(
        users[0], "elsewhere", datetime.now(UTC) + timedelta(days=1)
    )
    restore = await ops.start(
        ALICE_IN_ACME,
        WorkflowType.BULK_USER_OPERATION.value,
        BulkUserOperationInput(tenant_id="acme", action=BulkAction.RESTORE, user_ids=users[:5]),
    )
    restored = await ops.result(ALICE_IN_ACME, restore.id, result_type=BulkUserOperationResult)
    assert restored.succeeded == users[1:5]
    assert restored.failed == [BulkItemFailure(user_id=users[0], reason="the user is deactivated")]


async def test_bulk_operation_for_another_tenant_or_by_a_member_is_refused(
    service: RunningService, service_store: UserStore
) -> None:
    ops = service.runtime.operations
    carol = await add_member(service_store, "carol")
    other_tenant = await ops.start(
        BOB_IN_GLOBEX,
        WorkflowType.BULK_USER_OPERATION.value,
        BulkUserOperationInput(tenant_id="acme", action=BulkAction.SUSPEND, user_ids=[carol]),
    )
    with pytest.raises(WorkflowFailed) as caught:
        await ops.result(BOB_IN_GLOBEX, other_tenant.id)
    assert caught.value.kind is ErrorKind.TENANT_ISOLATION
    by_member = await ops.start(
        member_context(carol),
        WorkflowType.BULK_USER_OPERATION.value,
        BulkUserOperationInput(
            tenant_id="acme", action=BulkAction.UPDATE_LOCALE, user_ids=[carol], locale="de"
        ),
    )
    with pytest.raises(WorkflowFailed) as caught:
        await ops.result(member_context(carol), by_member.id)
    assert caught.value.kind is ErrorKind.AUTHORIZATION
    assert await _statuses(service_store, carol) == {"acme": MembershipStatus.ACTIVE}
    assert (await _profile(service_store, carol)).locale == "en"


# Read workflows -------------------------------------------------------------------------


async def test_read_workflows_answer_within_the_tenant_and_change_nothing(
    service: RunningService, service_store: UserStore
) -> None:
    ops = service.runtime.operations
    carol = await add_member(service_store, "carol")
    dave = await add_member(service_store, "dave")
    for index in range(3):
        await service_store.record_activity(
            ActivityEntry(
                id=f"seed-{index}",
                tenant_id="acme",
                user_id=carol,
                kind=ActivityKind.PREFERENCES_UPDATED,
                summary=f"change {index}",
                at=datetime.now(UTC) + timedelta(seconds=index),
            )
        )
    before = (await service_store.count(activity_log), await service_store.count(profiles))

    profile = await ops.execute(
        ALICE_IN_ACME,
        WorkflowType.GET_USER_PROFILE.value,
        GetUserProfileInput(user_id=carol),
        budget=BUDGET,
        result_type=UserProfile,
    )
    assert profile.result is not None
    assert (profile.result.user_id, profile.result.tenant_id, profile.result.roles) == (
        carol,
        "acme",
        ["member"],
    )
    activity_outcome = await ops.execute(
        member_context(carol),
        WorkflowType.GET_RECENT_ACTIVITY.value,
        GetRecentActivityInput(user_id=carol, limit=2),
        budget=BUDGET,
        result_type=RecentActivity,
    )
    assert activity_outcome.result is not None
    assert [e.summary for e in activity_outcome.result.entries] == ["change 2", "change 1"]

    # Another tenant's admin: the user does not exist there.
    with pytest.raises(WorkflowFailed) as caught:
        await ops.execute(
            BOB_IN_GLOBEX,
            WorkflowType.GET_USER_PROFILE.value,
            GetUserProfileInput(user_id=carol),
            budget=BUDGET,
        )
    assert (caught.value.kind, caught.value.message) == (
        ErrorKind.TENANT_ISOLATION,
        "user not found",
    )
    # A plain member may not read another member's activity.
    with pytest.raises(WorkflowFailed) as caught:
        await ops.execute(
            member_context(dave),
            WorkflowType.GET_RECENT_ACTIVITY.value,
            GetRecentActivityInput(user_id=carol),
            budget=BUDGET,
        )
    assert caught.value.kind is ErrorKind.AUTHORIZATION

    after = (await service_store.count(activity_log), await service_store.count(profiles))
    assert after == before
    assert (await _profile(service_store, carol)).version == 1
    # One local activity: no activity task went through a task queue.
    history = await ops.client.get_workflow_handle(profile.operation.id).fetch_history()
    event_types = {event.event_type for event in history.events}
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in event_types
    assert EventType.EVENT_TYPE_MARKER_RECORDED in event_types
