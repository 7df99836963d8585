"""The activities other services' workflows call by name (contracts.user.UserActivity) on the
user task queue: idempotent, and refused for data outside the caller's tenant."""

from __future__ import annotations

import uuid
from typing import Any

from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind
from contracts.user import MembershipStatus, UserActivity
from services.user.store import UserStore, memberships
from tests.services.user.flows import (
    CALLER_WORKFLOW,
    ActivityCall,
    ActivityCallerWorkflow,
    CallerInput,
    CallOutcome,
)
from tests.services.user.support import ALICE, BOB, BOB_IN_GLOBEX, add_member
from tests.support.services import RunningService
from workflow_client.worker import create_worker


async def _call(
    service: RunningService, context: RequestContext, *calls: tuple[str, dict[str, Any]]
) -> list[CallOutcome]:
    queue = f"user-contract-{uuid.uuid4().hex[:8]}"
    client = service.runtime.client
    async with create_worker(client, task_queue=queue, workflows=[ActivityCallerWorkflow]):
        with use_context(context):
            outcomes: list[CallOutcome] = await client.execute_workflow(
                CALLER_WORKFLOW,
                CallerInput(calls=[ActivityCall(activity=name, input=arg) for name, arg in calls]),
                id=f"{CALLER_WORKFLOW}-{uuid.uuid4().hex}",
                task_queue=queue,
                result_type=list[CallOutcome],
            )
    return outcomes


async def test_onboarding_creates_the_profile_and_membership_once(
    service: RunningService, service_store: UserStore
) -> None:
    newcomer = RequestContext(user_id="new-user-1", tenant_id="globex", roles=("member",))
    profile = {"user_id": "new-user-1", "email": "New@Example.test", "display_name": "Nia New"}
    membership = {"user_id": "new-user-1", "tenant_id": "globex", "roles": ["member"]}
    outcomes = await _call(
        service,
        newcomer,
        (UserActivity.CREATE_PROFILE, profile),
        (UserActivity.CREATE_PROFILE, profile),  # a retried onboarding step
        (UserActivity.UPSERT_MEMBERSHIP, membership),
        (UserActivity.UPSERT_MEMBERSHIP, membership),
    )
    assert [o.error_type for o in outcomes] == [None, None, None, None]
    created = outcomes[0].result
    assert isinstance(created, dict)
    assert (created["email"], created["status"]) == ("new@example.test", "active")
    assert outcomes[1].result == created
    assert outcomes[3].result == {
        "user_id": "new-user-1",
        "tenant_id": "globex",
        "roles": ["member"],
        "status": "active",
    }
    assert await service_store.count(memberships, user_id="new-user-1") == 1
    found = await service_store.search_directory("globex", "nia", first=5, after=None)
    assert [m.user_id for m, _p in found] == ["new-user-1"]


async def test_activities_refuse_data_of_another_tenant(
    service: RunningService, service_store: UserStore
) -> None:
    carol = await add_member(service_store, "carol")  # acme only
    outcomes = await _call(
        service,
        BOB_IN_GLOBEX,
        (UserActivity.UPSERT_MEMBERSHIP, {"user_id": BOB.id, "tenant_id": "acme"}),
        (UserActivity.SUSPEND_MEMBERSHIPS, {"user_id": carol, "operation_key": "k"}),
        (UserActivity.GET_PROFILE, {"user_id": carol}),
        (
            UserActivity.RECORD_ACTIVITY,
            {
                "entry_id": "x",
                "tenant_id": "acme",
                "user_id": ALICE.id,
                "kind": "profile.updated",
                "summary": "forged",
            },
        ),
        (UserActivity.GET_PROFILE, {"user_id": "nobody-at-all"}),
    )
    assert [(o.error_type, o.non_retryable) for o in outcomes] == [
        (ErrorKind.TENANT_ISOLATION.value, True),
        (ErrorKind.TENANT_ISOLATION.value, True),
        (ErrorKind.TENANT_ISOLATION.value, True),
        (ErrorKind.TENANT_ISOLATION.value, True),
        (ErrorKind.NOT_FOUND.value, True),
    ]
    assert all(
        o.message in ("user not found", "membership not found", "activity log not found")
        for o in outcomes
    )
    assert await service_store.count(memberships, user_id=BOB.id) == 1
    carol_acme = await service_store.membership(carol, "acme")
    assert carol_acme is not None
    assert carol_acme.status is MembershipStatus.ACTIVE
    assert await service_store.recent_activity("acme", ALICE.id, 5) == []


async def test_suspension_by_the_tenant_service_is_scoped_and_reversible(
    service: RunningService, service_store: UserStore
) -> None:
    # Alice is in acme and globex; globex's owner suspends her there only, then restores.
    outcomes = await _call(
        service,
        BOB_IN_GLOBEX,
        (UserActivity.SUSPEND_MEMBERSHIPS, {"user_id": ALICE.id, "operation_key": "t-1"}),
        (UserActivity.SUSPEND_MEMBERSHIPS, {"user_id": ALICE.id, "operation_key": "t-1"}),
    )
    assert [o.result for o in outcomes] == [{"user_id": ALICE.id, "tenant_ids": ["globex"]}] * 2
    statuses = {m.tenant_id: m.status for m in await service_store.memberships_of(ALICE.id)}
    assert statuses == {"acme": MembershipStatus.ACTIVE, "globex": MembershipStatus.SUSPENDED}
    restored = await _call(
        service,
        BOB_IN_GLOBEX,
        (UserActivity.RESTORE_MEMBERSHIPS, {"user_id": ALICE.id, "operation_key": "t-1"}),
    )
    assert restored[0].result == {"user_id": ALICE.id, "tenant_ids": ["globex"]}
    statuses = {m.tenant_id: m.status for m in await service_store.memberships_of(ALICE.id)}
    assert set(statuses.values()) == {MembershipStatus.ACTIVE}
