"""The activities other services' workflows call by name on the tenant task queue
(contracts.tenant.TenantActivity), and the user service's remove_membership the tenant
sagas compensate with: idempotent, and refused outside the caller's tenant."""

from __future__ import annotations

import uuid
from typing import Any

from contracts.context import RequestContext, use_context
from contracts.tenant import TenantActivity
from contracts.user import UserActivity
from services.tenant.store import TenantStore
from services.user.store import UserStore
from tests.services.tenant.flows import (
    CALLER_WORKFLOW,
    ActivityCall,
    ActivityCallerWorkflow,
    CallerInput,
    CallOutcome,
)
from tests.services.tenant.support import (
    ALICE,
    ALICE_IN_ACME,
    ALICE_IN_GLOBEX,
    BOB,
    BOB_IN_GLOBEX,
    Stack,
    unique,
)
from workflow_client.worker import create_worker


async def _call(
    stack: Stack, context: RequestContext, *calls: tuple[str, dict[str, Any]]
) -> list[CallOutcome]:
    queue = f"tenant-contract-{uuid.uuid4().hex[:8]}"
    client = stack.ops.client
    async with create_worker(client, task_queue=queue, workflows=[ActivityCallerWorkflow]):
        with use_context(context):
            outcomes: list[CallOutcome] = await client.execute_workflow(
                CALLER_WORKFLOW,
                CallerInput(
                    calls=[
                        ActivityCall(
                            activity=name,
                            input=arg,
                            task_queue="user-task-queue"
                            if name.startswith("user.")
                            else "tenant-task-queue",
                        )
                        for name, arg in calls
                    ]
                ),
                id=f"{CALLER_WORKFLOW}-{uuid.uuid4().hex}",
                task_queue=queue,
                result_type=list[CallOutcome],
            )
    return outcomes


async def test_add_and_remove_member_are_idempotent_and_keep_earlier_members(
    stack: Stack,
) -> None:
    store = TenantStore(stack.db)
    newcomer = unique("user")
    add = {"tenant_id": "acme", "user_id": newcomer, "roles": ["member"], "operation_id": "on-1"}
    remove = {"tenant_id": "acme", "user_id": newcomer, "operation_id": "on-1"}
    existing = {"tenant_id": "acme", "user_id": ALICE.id, "operation_id": "on-1"}
    async with stack.workers(services=("tenant",)):
        outcomes = await _call(
            stack,
            ALICE_IN_ACME,
            (TenantActivity.ADD_MEMBER, add),
            (TenantActivity.ADD_MEMBER, add),
            # Alice was a member before: the compensation of on-1 must keep her.
            (TenantActivity.ADD_MEMBER, {**add, "user_id": ALICE.id}),
            (TenantActivity.REMOVE_MEMBER, existing),
        )
        # The repeat is this operation's own: still "created" (its compensation removes it).
        assert [o.result["created"] for o in outcomes[:3]] == [True, True, False]  # type: ignore[index, call-overload]
        assert outcomes[3].result == {"changed": False}
        assert await store.member("acme", ALICE.id) is not None
        member = await store.member("acme", newcomer)
        assert member is not None
        assert member.invited_by == ALICE.id
        outcomes = await _call(
            stack,
            ALICE_IN_ACME,
            (TenantActivity.REMOVE_MEMBER, remove),
            (TenantActivity.REMOVE_MEMBER, remove),
        )
    assert [o.result for o in outcomes] == [{"changed": True}, {"changed": False}]
    assert await store.member("acme", newcomer) is None


async def test_member_changes_are_refused_outside_the_callers_tenant_or_role(
    stack: Stack,
) -> None:
    store = TenantStore(stack.db)
    newcomer = unique("user")
    add = {"tenant_id": "acme", "user_id": newcomer, "roles": ["member"], "operation_id": "x"}
    async with stack.workers(services=("tenant",)):
        outcomes = await _call(
            stack,
            BOB_IN_GLOBEX,
            (TenantActivity.ADD_MEMBER, add),
            (
                TenantActivity.REMOVE_MEMBER,
                {"tenant_id": "acme", "user_id": ALICE.id, "operation_id": "x"},
            ),
        )
        member_only = await _call(
            stack, ALICE_IN_GLOBEX, (TenantActivity.ADD_MEMBER, {**add, "tenant_id": "globex"})
        )
    assert [o.error_type for o in outcomes] == ["TenantIsolationViolation"] * 2
    assert [o.message for o in outcomes] == ["tenant not found"] * 2
    assert member_only[0].error_type == "AuthorizationError"
    assert await store.member("acme", newcomer) is None
    assert await store.member("globex", newcomer) is None
    assert await store.member("acme", ALICE.id) is not None


async def test_export_and_erase_user_data(stack: Stack) -> None:
    store = TenantStore(stack.db)
    user = unique("user")
    await store.add_member("acme", user, ["member"], None, None)
    await store.add_member("globex", user, ["member"], None, None)
    await store.set_current_tenant(user, "globex", unique("switch"))
    request = {"user_id": user, "request_id": "dsr-1"}
    own = RequestContext(user_id=user, tenant_id="acme", roles=("member",))
    async with stack.workers(services=("tenant",)):
        exported = await _call(stack, own, (TenantActivity.EXPORT_USER_DATA, request))
        # An admin of acme sees and erases only the acme rows.
        by_admin = await _call(
            stack,
            ALICE_IN_ACME,
            (TenantActivity.EXPORT_USER_DATA, request),
            (TenantActivity.ERASE_USER_DATA, request),
        )
        by_member = await _call(stack, ALICE_IN_GLOBEX, (TenantActivity.ERASE_USER_DATA, request))
        erased = await _call(
            stack,
            own,
            (TenantActivity.ERASE_USER_DATA, request),
            (TenantActivity.ERASE_USER_DATA, request),
        )
    records: Any = exported[0].result
    assert records["service"] == "tenant"
    assert sorted(r["tenant_id"] for r in records["records"]["memberships"]) == ["acme", "globex"]
    assert len(records["records"]["tenant_switches"]) == 1
    admin_view: Any = by_admin[0].result
    assert [r["tenant_id"] for r in admin_view["records"]["memberships"]] == ["acme"]
    assert by_admin[1].result["rows"]["tenant_memberships"] == 1  # type: ignore[index, call-overload]
    assert by_member[0].error_type == "AuthorizationError"
    assert erased[0].result["rows"] == {  # type: ignore[index, call-overload]
        "tenant_memberships": 1,
        "tenant_current": 1,
        "tenant_switches": 1,
    }
    assert set(erased[1].result["rows"].values()) == {0}  # type: ignore[index, call-overload, union-attr]
    assert await store.user_records(user, None) == {
        "memberships": [],
        "current_tenant": [],
        "tenant_switches": [],
    }


async def test_user_remove_membership_is_idempotent_and_tenant_checked(stack: Stack) -> None:
    users = UserStore(stack.runtimes["user"].db)
    await users.upsert_membership(BOB.id, "acme", ["member"])
    remove = {"user_id": BOB.id, "tenant_id": "acme"}
    async with stack.workers(services=("user",)):
        refused = await _call(stack, BOB_IN_GLOBEX, (UserActivity.REMOVE_MEMBERSHIP, remove))
        assert refused[0].error_type == "TenantIsolationViolation"
        assert await users.membership(BOB.id, "acme") is not None
        outcomes = await _call(
            stack,
            ALICE_IN_ACME,
            (UserActivity.REMOVE_MEMBERSHIP, remove),
            (UserActivity.REMOVE_MEMBERSHIP, remove),
        )
    assert [o.result for o in outcomes] == [
        {"user_id": BOB.id, "tenant_ids": ["acme"]},
        {"user_id": BOB.id, "tenant_ids": []},
    ]
    assert await users.membership(BOB.id, "acme") is None
    assert await users.membership(BOB.id, "globex") is not None
