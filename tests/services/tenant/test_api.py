"""The tenant HTTP API over real HTTP, with the real auth, user and tenant workers: tenants,
members and roles, the switch endpoint end to end (login -> switch -> exchange), upgrade,
suspension; another tenant's resources are 404."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from contracts.auth import GrantStatus
from contracts.context import RequestContext
from contracts.tenant import InvoiceStatus, Plan, TenantStatus
from services.auth.store import AuthStore
from services.tenant.billing import terms
from services.tenant.store import TenantStore, now_utc
from tests.services.tenant.support import (
    ALICE,
    ALICE_IN_ACME,
    BOB,
    BOB_IN_GLOBEX,
    OWNER,
    PASSWORD,
    Stack,
    bearer,
    snapshot,
    unique,
)


async def _wait_done(stack: Stack, context: RequestContext, operation_id: str) -> Any:
    async with asyncio.timeout(30):
        while True:
            operation = await stack.ops.describe(context, operation_id)
            if operation.status.is_terminal:
                return operation
            await asyncio.sleep(0.1)


async def test_tenants_of_the_caller_and_isolation(
    stack: Stack, tenant_http: httpx.AsyncClient
) -> None:
    alice = bearer(stack.settings, ALICE_IN_ACME)
    bob = bearer(stack.settings, BOB_IN_GLOBEX)
    mine = (await tenant_http.get("/api/tenant/tenants", headers=alice)).json()["items"]
    ids = {item["tenant"]["id"]: item["roles"] for item in mine}
    assert ids["acme"] == list(OWNER)
    assert ids["globex"] == ["member"]
    bobs = (await tenant_http.get("/api/tenant/tenants", headers=bob)).json()["items"]
    assert "acme" not in {item["tenant"]["id"] for item in bobs}
    assert (await tenant_http.get("/api/tenant/tenants/acme", headers=bob)).status_code == 404
    assert (await tenant_http.get("/api/tenant/tenants/nope", headers=alice)).status_code == 404
    found = await tenant_http.get("/api/tenant/tenants/acme", headers=alice)
    assert found.status_code == 200
    assert found.json()["tenant"]["plan"] == "professional"
    members = await tenant_http.get("/api/tenant/tenants/acme/members", headers=bob)
    assert members.status_code == 404
    assert (await tenant_http.get("/api/tenant/tenants")).status_code == 401


async def test_update_tenant_needs_an_admin(stack: Stack, tenant_http: httpx.AsyncClient) -> None:
    member = bearer(
        stack.settings, RequestContext(user_id=ALICE.id, tenant_id="globex", roles=("member",))
    )
    denied = await tenant_http.patch(
        "/api/tenant/tenants/globex", json={"name": "Mine now"}, headers=member
    )
    assert denied.status_code == 403
    other = await tenant_http.patch(
        "/api/tenant/tenants/globex",
        json={"name": "X"},
        headers=bearer(stack.settings, ALICE_IN_ACME),
    )
    assert other.status_code == 404
    bob = bearer(stack.settings, BOB_IN_GLOBEX)
    invalid = await tenant_http.patch("/api/tenant/tenants/globex", json={}, headers=bob)
    assert invalid.status_code == 422
    changed = await tenant_http.patch(
        "/api/tenant/tenants/globex", json={"settings": {"theme": "dark"}}, headers=bob
    )
    assert changed.status_code == 200
    assert changed.json()["settings"] == {"theme": "dark"}
    assert changed.json()["name"] == "Globex Corporation"


async def test_members_and_roles(stack: Stack, tenant_http: httpx.AsyncClient) -> None:
    """Member changes run tenant_membership_sync (see test_membership_sync for what reaches
    auth and the user directory): 200 with the result when done."""
    tenant_id = unique("m")
    owner = RequestContext(user_id=ALICE.id, tenant_id=tenant_id, roles=OWNER)
    store = TenantStore(stack.db)
    await store.seed(tenant_id, "M", Plan.FREE, terms(Plan.FREE).quotas, {ALICE.id: list(OWNER)})
    headers = bearer(stack.settings, owner)
    base = f"/api/tenant/tenants/{tenant_id}/members"
    async with stack.workers():
        added = await tenant_http.post(
            base, json={"user_id": BOB.id, "roles": ["member"]}, headers=headers
        )
        assert added.status_code == 200, added.text
        assert added.json()["member"]["invited_by"] == ALICE.id
        again = await tenant_http.post(base, json={"user_id": BOB.id}, headers=headers)
        assert again.status_code == 409
        bad = await tenant_http.post(
            base, json={"user_id": BOB.id, "roles": ["god"]}, headers=headers
        )
        assert bad.status_code == 422
        assert bad.json()["errors"]
        listed = (await tenant_http.get(base, headers=headers)).json()["items"]
        assert sorted(m["user_id"] for m in listed) == sorted([ALICE.id, BOB.id])
        last_owner = await tenant_http.patch(
            f"{base}/{ALICE.id}", json={"roles": ["member"]}, headers=headers
        )
        assert last_owner.status_code == 409
        assert (await store.member(tenant_id, ALICE.id)).roles == list(OWNER)  # type: ignore[union-attr]
        promoted = await tenant_http.patch(
            f"{base}/{BOB.id}", json={"roles": ["admin"]}, headers=headers
        )
        assert promoted.status_code == 200
        assert promoted.json()["member"]["roles"] == ["admin"]
        bob_admin = bearer(
            stack.settings, RequestContext(user_id=BOB.id, tenant_id=tenant_id, roles=("admin",))
        )
        refused = await tenant_http.delete(f"{base}/{ALICE.id}", headers=bob_admin)
        assert refused.status_code == 403
        removed = await tenant_http.delete(f"{base}/{BOB.id}", headers=headers)
        assert removed.status_code == 200
        assert await store.member(tenant_id, BOB.id) is None
        assert (await tenant_http.delete(f"{base}/{BOB.id}", headers=headers)).status_code == 404


async def test_create_tenant_runs_provisioning(
    stack: Stack, tenant_http: httpx.AsyncClient
) -> None:
    alice = bearer(stack.settings, ALICE_IN_ACME)
    tenant_id = unique("api")
    invalid = await tenant_http.post(
        "/api/tenant/tenants", json={"id": "Not A Slug!", "name": "x"}, headers=alice
    )
    assert invalid.status_code == 422
    taken = await tenant_http.post(
        "/api/tenant/tenants", json={"id": "globex", "name": "x"}, headers=alice
    )
    assert taken.status_code == 409
    async with stack.workers():
        started = await tenant_http.post(
            "/api/tenant/tenants", json={"id": tenant_id, "name": "Api Co"}, headers=alice
        )
        assert started.status_code == 202
        operation = await _wait_done(stack, ALICE_IN_ACME, started.json()["operation_id"])
    assert operation.status.value == "COMPLETED"
    mine = (await tenant_http.get("/api/tenant/tenants", headers=alice)).json()["items"]
    assert tenant_id in {item["tenant"]["id"] for item in mine}


async def _login(auth_http: httpx.AsyncClient, email: str, tenant_id: str) -> dict[str, Any]:
    response = await auth_http.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD, "tenant_id": tenant_id}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_switch_end_to_end(
    stack: Stack, tenant_http: httpx.AsyncClient, auth_http: httpx.AsyncClient
) -> None:
    tokens = await _login(auth_http, ALICE.email, "acme")
    headers = {"authorization": f"Bearer {tokens['access_token']}"}
    async with stack.workers():
        switched = await tenant_http.post(
            "/api/tenant/switch", json={"tenant_id": "globex"}, headers=headers
        )
    assert switched.status_code == 200, switched.text
    body = switched.json()
    assert body["tenant"]["tenant"]["id"] == "globex"
    assert body["roles"] == ["member"]
    exchanged = await auth_http.post(
        "/api/auth/sessions/exchange", json={"code": body["exchange_code"]}
    )
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["tenant_id"] == "globex"
    assert exchanged.json()["session_id"] == body["session_id"]
    assert await TenantStore(stack.db).current_tenant(ALICE.id) == "globex"
    # The old session has ended.
    refreshed = await auth_http.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_switch_to_a_tenant_of_which_the_user_is_not_a_member(
    stack: Stack, tenant_http: httpx.AsyncClient, auth_http: httpx.AsyncClient
) -> None:
    tokens = await _login(auth_http, BOB.email, "globex")
    headers = {"authorization": f"Bearer {tokens['access_token']}"}
    before = await snapshot(stack.db)
    async with stack.workers():
        refused = await tenant_http.post(
            "/api/tenant/switch", json={"tenant_id": "acme"}, headers=headers
        )
    assert refused.status_code == 404
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert await snapshot(stack.db) == before


async def test_upgrade_suspend_and_resume_through_the_api(
    stack: Stack, tenant_http: httpx.AsyncClient
) -> None:
    tenant_id = unique("u")
    store = TenantStore(stack.db)
    await store.seed(tenant_id, "U", Plan.FREE, terms(Plan.FREE).quotas, {ALICE.id: list(OWNER)})
    await AuthStore(stack.runtimes["auth"].db).seed_grant(ALICE.id, tenant_id, OWNER, now_utc())
    owner = RequestContext(user_id=ALICE.id, tenant_id=tenant_id, roles=OWNER)
    headers = bearer(stack.settings, owner)
    base = f"/api/tenant/tenants/{tenant_id}"
    same = await tenant_http.post(f"{base}/upgrade", json={"plan": "free"}, headers=headers)
    assert same.status_code == 409
    admin_only = bearer(
        stack.settings, RequestContext(user_id=BOB.id, tenant_id=tenant_id, roles=("admin",))
    )
    assert (
        await tenant_http.post(f"{base}/upgrade", json={"plan": "enterprise"}, headers=admin_only)
    ).status_code == 404  # bob is no member here
    async with stack.workers():
        keyed = {**headers, "Idempotency-Key": unique("upgrade")}
        started = await tenant_http.post(
            f"{base}/upgrade", json={"plan": "professional"}, headers=keyed
        )
        assert started.status_code == 202
        operation = await _wait_done(stack, owner, started.json()["operation_id"])
        assert operation.status.value == "COMPLETED"
        # The same request again, with its key: the same operation, though the plan it
        # checks has changed meanwhile; without the key it is a conflict.
        repeated = await tenant_http.post(
            f"{base}/upgrade", json={"plan": "professional"}, headers=keyed
        )
        assert (repeated.status_code, repeated.json()) == (202, started.json())
        unkeyed = await tenant_http.post(
            f"{base}/upgrade", json={"plan": "professional"}, headers=headers
        )
        assert unkeyed.status_code == 409
        invoices = (await tenant_http.get(f"{base}/invoices", headers=headers)).json()["items"]
        assert [(i["plan"], i["status"]) for i in invoices] == [
            ("professional", InvoiceStatus.PAID.value)
        ]

        suspended = await tenant_http.post(f"{base}/suspend", json={}, headers=headers)
        assert suspended.status_code == 202
        async with asyncio.timeout(30):
            while (await store.get_tenant(tenant_id)).status is not TenantStatus.SUSPENDED:  # type: ignore[union-attr]
                await asyncio.sleep(0.1)
        grant = await AuthStore(stack.runtimes["auth"].db).get_grant(ALICE.id, tenant_id)
        assert grant is not None
        async with asyncio.timeout(30):
            while grant is not None and grant.status is not GrantStatus.SUSPENDED:
                await asyncio.sleep(0.1)
                grant = await AuthStore(stack.runtimes["auth"].db).get_grant(ALICE.id, tenant_id)
        again = await tenant_http.post(f"{base}/suspend", json={}, headers=headers)
        assert again.status_code == 409
        resumed = await tenant_http.post(f"{base}/resume", headers=headers)
        assert resumed.status_code == 202
        operation = await _wait_done(stack, owner, resumed.json()["operation_id"])
        assert operation.status.value == "COMPLETED"
    tenant = await store.get_tenant(tenant_id)
    assert tenant is not None
    assert tenant.status is TenantStatus.ACTIVE
    assert tenant.plan is Plan.PROFESSIONAL
    grant = await AuthStore(stack.runtimes["auth"].db).get_grant(ALICE.id, tenant_id)
    assert grant is not None
    assert grant.status is GrantStatus.ACTIVE
