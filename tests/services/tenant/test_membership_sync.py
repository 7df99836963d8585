"""tenant_membership_sync on the real stack (real auth, user and tenant workers, one real
database): a member added, given other roles or removed reaches the auth grants (what a
fresh login's token carries) and the user directory; the last owner stays; a failure
injected at each step, or a cancel mid-way, leaves every store exactly as it was."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from adx.identity import TokenType
from contracts.auth import AuthActivity, GrantStatus
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.names import WorkflowType
from contracts.progress import EventKind
from contracts.tenant import (
    MembershipChange,
    Plan,
    TenantMembershipSyncInput,
    TenantMembershipSyncResult,
    TenantTask,
)
from contracts.user import UserActivity
from services.auth.activities import components
from services.auth.models import SessionRecord
from services.auth.security import hash_password
from services.auth.store import AuthStore
from services.common.dev_seed import seed_user_id
from services.tenant.billing import terms
from services.tenant.store import TenantStore, now_utc
from services.user.store import UserStore
from tests.services.tenant.support import (
    ALICE,
    OWNER,
    PASSWORD,
    Stack,
    bearer,
    snapshot,
    stand_in,
    unique,
    wait_for_event,
)
from workflow_client.errors import WorkflowFailed

BUDGET = timedelta(seconds=30)


def _owner_in(tenant_id: str) -> RequestContext:
    return RequestContext(user_id=ALICE.id, tenant_id=tenant_id, roles=OWNER)


async def _account(stack: Stack, name: str) -> tuple[str, str]:
    """A user with an active account (auth, password PASSWORD) and a profile (user), member
    of no tenant yet."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.test"
    user_id = seed_user_id(email)
    await AuthStore(stack.runtimes["auth"].db).seed_user(
        user_id, email, await hash_password(PASSWORD), now_utc()
    )
    await UserStore(stack.runtimes["user"].db).create_profile(
        user_id, email, f"{name.title()} {user_id[:6]}", "en", "UTC"
    )
    return user_id, email


async def _tenant(stack: Stack, members: dict[str, list[str]]) -> str:
    """A fresh tenant with these members (alice is the owner) in all three stores."""
    tenant_id = unique("ms")
    members = {ALICE.id: list(OWNER), **members}
    await TenantStore(stack.db).seed(
        tenant_id, tenant_id.title(), Plan.FREE, terms(Plan.FREE).quotas, members
    )
    auth = AuthStore(stack.runtimes["auth"].db)
    users = UserStore(stack.runtimes["user"].db)
    for user_id, roles in members.items():
        await auth.seed_grant(user_id, tenant_id, roles, now_utc())
        await users.upsert_membership(user_id, tenant_id, roles)
    return tenant_id


async def _session(stack: Stack, user_id: str, tenant_id: str) -> str:
    now = now_utc()
    record = SessionRecord(
        id=unique("s")[:36],
        user_id=user_id,
        tenant_id=tenant_id,
        created_at=now,
        expires_at=now.replace(year=now.year + 1),
        refresh_token_hash="x" * 64,
    )
    await components(stack.runtimes["auth"]).sessions.create(record)
    return record.id


async def _login(auth_http: httpx.AsyncClient, email: str, tenant_id: str) -> httpx.Response:
    return await auth_http.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD, "tenant_id": tenant_id}
    )


async def _token_roles(stack: Stack, auth_http: httpx.AsyncClient, email: str, tenant: str) -> Any:
    response = await _login(auth_http, email, tenant)
    assert response.status_code == 200, response.text
    claims = stack.tenant.verifier.verify(response.json()["access_token"], TokenType.ACCESS)
    return list(claims.roles)


async def _directory(stack: Stack, tenant_id: str, user_id: str) -> list[str] | None:
    """The member's roles as the tenant's directory shows them (None: not listed)."""
    found = await UserStore(stack.runtimes["user"].db).search_directory(
        tenant_id, "", first=100, after=None
    )
    for membership, _profile in found:
        if membership.user_id == user_id:
            return list(membership.roles)
    return None


async def test_add_change_roles_and_remove_reach_auth_and_the_directory(
    stack: Stack, tenant_http: httpx.AsyncClient, auth_http: httpx.AsyncClient
) -> None:
    dave, email = await _account(stack, "dave")
    tenant_id = await _tenant(stack, {})
    headers = bearer(stack.settings, _owner_in(tenant_id))
    base = f"/api/tenant/tenants/{tenant_id}/members"
    auth = AuthStore(stack.runtimes["auth"].db)
    async with stack.workers():
        added = await tenant_http.post(
            base, json={"user_id": dave, "roles": ["member"]}, headers=headers
        )
        assert added.status_code == 200, added.text
        assert added.json()["member"]["roles"] == ["member"]
        assert added.json()["member"]["invited_by"] == ALICE.id
        assert added.json()["previous_roles"] is None
        assert await _token_roles(stack, auth_http, email, tenant_id) == ["member"]
        assert await _directory(stack, tenant_id, dave) == ["member"]
        again = await tenant_http.post(base, json={"user_id": dave}, headers=headers)
        assert again.status_code == 409

        changed = await tenant_http.patch(
            f"{base}/{dave}", json={"roles": ["admin", "member"]}, headers=headers
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["previous_roles"] == ["member"]
        assert await _token_roles(stack, auth_http, email, tenant_id) == ["admin", "member"]
        assert await _directory(stack, tenant_id, dave) == ["admin", "member"]
        grant = await auth.get_grant(dave, tenant_id)
        assert grant is not None
        assert grant.roles == ["admin", "member"]
        assert grant.status is GrantStatus.ACTIVE

        # The member's live session in the tenant ends with the removal.
        session_id = await _session(stack, dave, tenant_id)
        removed = await tenant_http.delete(f"{base}/{dave}", headers=headers)
        assert removed.status_code == 200, removed.text
        assert removed.json()["member"] is None
        assert await TenantStore(stack.db).member(tenant_id, dave) is None
        assert await auth.get_grant(dave, tenant_id) is None
        assert (await _login(auth_http, email, tenant_id)).status_code == 404
        assert await _directory(stack, tenant_id, dave) is None
        assert await UserStore(stack.runtimes["user"].db).membership(dave, tenant_id) is None
        record = await components(stack.runtimes["auth"]).sessions.get(session_id)
        assert record is not None
        assert record.revoked_at is not None
        assert (await tenant_http.delete(f"{base}/{dave}", headers=headers)).status_code == 404


async def test_the_last_owner_is_never_demoted_or_removed(
    stack: Stack, tenant_http: httpx.AsyncClient
) -> None:
    tenant_id = await _tenant(stack, {})
    headers = bearer(stack.settings, _owner_in(tenant_id))
    base = f"/api/tenant/tenants/{tenant_id}/members"
    before = await snapshot(stack.db)
    async with stack.workers():
        demoted = await tenant_http.patch(
            f"{base}/{ALICE.id}", json={"roles": ["member"]}, headers=headers
        )
        assert demoted.status_code == 409
        removed = await tenant_http.delete(f"{base}/{ALICE.id}", headers=headers)
        assert removed.status_code == 409
        # The workflow checks it as well (in the same transaction as the change).
        with pytest.raises(WorkflowFailed) as raised:
            await stack.ops.execute(
                _owner_in(tenant_id),
                WorkflowType.TENANT_MEMBERSHIP_SYNC.value,
                TenantMembershipSyncInput(
                    tenant_id=tenant_id, user_id=ALICE.id, change=MembershipChange.REMOVE
                ),
                budget=BUDGET,
                result_type=TenantMembershipSyncResult,
            )
    assert raised.value.kind is ErrorKind.CONFLICT
    assert await snapshot(stack.db) == before


async def test_a_member_manager_who_is_not_owner_cannot_touch_owners(
    stack: Stack, tenant_http: httpx.AsyncClient
) -> None:
    erin, _email = await _account(stack, "erin")
    tenant_id = await _tenant(stack, {erin: ["admin"]})
    admin = bearer(
        stack.settings, RequestContext(user_id=erin, tenant_id=tenant_id, roles=("admin",))
    )
    base = f"/api/tenant/tenants/{tenant_id}/members"
    before = await snapshot(stack.db)
    async with stack.workers():
        refused = await tenant_http.delete(f"{base}/{ALICE.id}", headers=admin)
        assert refused.status_code == 403
        promoted = await tenant_http.patch(
            f"{base}/{erin}", json={"roles": ["owner"]}, headers=admin
        )
        assert promoted.status_code == 403
    assert await snapshot(stack.db) == before


STEPS: dict[MembershipChange, list[tuple[str, str]]] = {
    MembershipChange.ADD: [
        ("change_membership", TenantTask.CHANGE_MEMBERSHIP),
        ("grant_access", AuthActivity.GRANT_TENANT_ACCESS),
        ("sync_user_projection", UserActivity.UPSERT_MEMBERSHIP),
    ],
    MembershipChange.SET_ROLES: [
        ("change_membership", TenantTask.CHANGE_MEMBERSHIP),
        ("grant_access", AuthActivity.GRANT_TENANT_ACCESS),
        ("sync_user_projection", UserActivity.UPSERT_MEMBERSHIP),
    ],
    MembershipChange.REMOVE: [
        ("change_membership", TenantTask.CHANGE_MEMBERSHIP),
        ("sync_user_projection", UserActivity.REMOVE_MEMBERSHIP),
        ("revoke_access", AuthActivity.REVOKE_TENANT_ACCESS),
    ],
}
CASES = [(change, step, name) for change, steps in STEPS.items() for step, name in steps]


async def _fixture(stack: Stack, change: MembershipChange) -> TenantMembershipSyncInput:
    """A tenant where the change applies: dave to add, or dave a (suspended-in-the-directory)
    member with a live session, to change or remove."""
    dave, _email = await _account(stack, "dave")
    if change is MembershipChange.ADD:
        tenant_id = await _tenant(stack, {})
        return TenantMembershipSyncInput(
            tenant_id=tenant_id, user_id=dave, change=change, roles=["member"]
        )
    tenant_id = await _tenant(stack, {dave: ["member"]})
    await _session(stack, dave, tenant_id)
    # A state of the projection the compensation must put back as it was.
    await UserStore(stack.runtimes["user"].db).suspend_memberships(dave, "someone-else", tenant_id)
    roles = ["admin"] if change is MembershipChange.SET_ROLES else []
    return TenantMembershipSyncInput(tenant_id=tenant_id, user_id=dave, change=change, roles=roles)


@pytest.mark.parametrize(("change", "step", "activity"), CASES)
async def test_a_failure_at_each_step_leaves_every_store_as_it_was(
    stack: Stack, change: MembershipChange, step: str, activity: str
) -> None:
    input = await _fixture(stack, change)
    before = await snapshot(stack.db)
    async with stack.workers({activity: stand_in(stack, activity)}):
        with pytest.raises(WorkflowFailed) as raised:
            await stack.ops.execute(
                _owner_in(input.tenant_id),
                WorkflowType.TENANT_MEMBERSHIP_SYNC.value,
                input,
                budget=BUDGET,
                result_type=TenantMembershipSyncResult,
            )
    assert raised.value.message == "injected failure"
    steps = [name for name, _ in STEPS[change]]
    done = steps[: steps.index(step)]
    assert raised.value.compensations == list(reversed(done))
    assert await snapshot(stack.db) == before


async def test_a_cancel_mid_way_leaves_every_store_as_it_was(stack: Stack) -> None:
    input = await _fixture(stack, MembershipChange.SET_ROLES)
    owner = _owner_in(input.tenant_id)
    before = await snapshot(stack.db)
    # The projection is written after the cancel arrived: awaited, then undone.
    slow = stand_in(stack, UserActivity.UPSERT_MEMBERSHIP, fail=False, delay=2)
    async with stack.workers({UserActivity.UPSERT_MEMBERSHIP: slow}):
        operation = await stack.ops.start(owner, WorkflowType.TENANT_MEMBERSHIP_SYNC.value, input)
        await wait_for_event(
            stack.ops,
            owner,
            operation.id,
            lambda e: e.kind is EventKind.STEP_STARTED and e.step == "sync_user_projection",
        )
        grant = await AuthStore(stack.runtimes["auth"].db).get_grant(input.user_id, input.tenant_id)
        assert grant is not None
        assert grant.roles == ["admin"]
        await stack.ops.cancel(owner, operation.id, "test")
        with pytest.raises(WorkflowFailed):
            await stack.ops.result(owner, operation.id)
        events = (await stack.ops.progress(owner, operation.id)).report.events
    compensated = [e.step for e in events if e.kind is EventKind.COMPENSATION_COMPLETED]
    assert compensated == ["sync_user_projection", "grant_access", "change_membership"]
    assert await snapshot(stack.db) == before


async def test_progress_names_every_step(stack: Stack) -> None:
    input = await _fixture(stack, MembershipChange.REMOVE)
    owner = _owner_in(input.tenant_id)
    async with stack.workers():
        outcome = await stack.ops.execute(
            owner,
            WorkflowType.TENANT_MEMBERSHIP_SYNC.value,
            input,
            budget=BUDGET,
            result_type=TenantMembershipSyncResult,
        )
        assert outcome.result is not None
        events = (await stack.ops.progress(owner, outcome.operation.id)).report.events
    completed = [e.step for e in events if e.kind is EventKind.STEP_COMPLETED]
    assert completed == [
        "read_membership",
        "change_membership",
        "sync_user_projection",
        "revoke_access",
    ]
