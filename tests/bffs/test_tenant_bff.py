"""The tenant subgraph end to end: the auth, user and tenant services (server + worker) on the
real Temporal dev server, the gateway in front of them, the BFF with a Redis cache."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from adx.settings import Settings
from bffs.tenant import overview
from bffs.tenant.subgraph import SUBGRAPH
from contracts.context import RequestContext
from graph import tasks
from graph.context import BffDependencies
from services.auth.activities import components
from services.auth.service import SERVICE as AUTH
from services.common.dev_seed import USERS
from services.tenant.service import SERVICE as TENANT
from services.user.service import SERVICE as USER
from tests.bffs.tenant_file_stack import (
    gateway_calls,
    running_bff_on,
    running_gateway,
    running_services,
    wait_result,
)
from tests.support.bff import graphql, issue_token
from tests.support.servers import RedisServer

ALICE, BOB = USERS[0], USERS[1]  # alice: acme owner + globex member; bob: globex owner
OWNER = ("owner", "admin", "member")
PASSWORD = "dev-password-123"

TENANTS = "{ tenants { id name plan roles isCurrent } }"
OVERVIEW = """{ tenantOverview {
  availableTenants { id }
  currentTenant { tenant { id name plan } memberCount roles quotas { maxUsers } }
  permissions { roles granted can(permission: "tenant.delete") } } }"""


class Stack:
    def __init__(self, url: str, deps: BffDependencies, gateway: str) -> None:
        self.url = url
        self.deps = deps
        self.gateway = gateway

    async def login(self, email: str, tenant_id: str) -> str:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                f"{self.gateway}/api/auth/login",
                json={"email": email, "password": PASSWORD, "tenant_id": tenant_id},
            )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def query(
        self, query: str, token: str | None, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return await graphql(self.url, query, variables, token)


@pytest.fixture(scope="module")
async def stack(
    settings: Settings,
    client: Client,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("tenant-bff")
    services_settings = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{folder / 'services.sqlite'}"}
    )
    definitions = {"auth": AUTH, "user": USER, "tenant": TENANT}
    async with running_services(definitions, services_settings, client) as running:
        try:
            urls = {name: url for name, (_runtime, url) in running.items()}
            jwks = f"{urls['auth']}/.well-known/jwks.json"
            async with (
                running_gateway(settings, client, urls, jwks) as gateway,
                running_bff_on(SUBGRAPH, settings, client, gateway, redis_server.url) as bff,
            ):
                url, deps = bff
                try:
                    yield Stack(url, deps, gateway)
                finally:
                    await tasks.drain(deps)
        finally:
            await components(running["auth"][0]).close()


def context_of(user_id: str, tenant_id: str, roles: tuple[str, ...] = OWNER) -> RequestContext:
    return RequestContext(user_id=user_id, tenant_id=tenant_id, roles=roles)


def workflow_starts(deps: BffDependencies, workflow_type: str) -> float:
    value = deps.metrics.registry.get_sample_value(
        "bff_workflow_starts_total", {"bff": "tenant", "workflow_type": workflow_type}
    )
    return value or 0.0


def code(body: dict[str, Any], index: int = 0) -> str:
    value: str = body["errors"][index]["extensions"]["code"]
    return value


async def test_unauthenticated_is_refused(stack: Stack) -> None:
    for query in (
        TENANTS,
        OVERVIEW,
        '{ tenant(id: "acme") { id } }',
        'mutation { switchTenant(tenantId: "globex") { accessToken } }',
        "mutation { upgradeTenant(plan: ENTERPRISE) { id } }",
        'mutation { createTenant(input: {id: "zz-top", name: "Z"}) { id } }',
    ):
        body = await stack.query(query, None)
        assert code(body) == "UNAUTHENTICATED", body
    body = await stack.query(TENANTS, "not-a-token")
    assert code(body) == "UNAUTHENTICATED"


async def test_tenants_are_cached_and_create_tenant_invalidates(stack: Stack) -> None:
    who = context_of(ALICE.id, "acme")
    token = issue_token(stack.deps.settings, who)
    first = await stack.query(TENANTS, token)
    tenants = {t["id"]: t for t in first["data"]["tenants"]}
    assert tenants["acme"]["roles"] == list(OWNER)
    assert tenants["acme"]["isCurrent"] is True
    assert tenants["globex"]["roles"] == ["member"]
    assert tenants["globex"]["isCurrent"] is False

    before = gateway_calls(stack.deps)
    again = await stack.query(TENANTS, token)
    assert again == first
    assert gateway_calls(stack.deps) == before  # a cache hit: no gateway call

    new_id = f"t-{uuid.uuid4().hex[:8]}"
    created = await stack.query(
        """mutation($input: CreateTenantInput!) { createTenant(input: $input) { id } }""",
        token,
        {"input": {"id": new_id, "name": "New Co", "plan": "FREE"}},
    )
    operation_id = created["data"]["createTenant"]["id"]
    before = gateway_calls(stack.deps)
    await stack.query(TENANTS, token)
    assert gateway_calls(stack.deps) == before + 1  # the mutation invalidated the list
    result = await wait_result(stack.deps, who, operation_id)
    assert result["tenant"]["id"] == new_id
    async with asyncio.timeout(20):
        while True:
            ids = {t["id"] for t in (await stack.query(TENANTS, token))["data"]["tenants"]}
            if new_id in ids:
                break
            await asyncio.sleep(0.1)

    # In the new tenant alice is the owner: upgrade it (a long operation: an Operation at once).
    owner_token = issue_token(stack.deps.settings, context_of(ALICE.id, new_id))
    tenant_query = "query($id: ID!) { tenant(id: $id) { id name plan isCurrent } }"
    found = await stack.query(tenant_query, owner_token, {"id": new_id})
    assert found["data"]["tenant"] == {
        "id": new_id,
        "name": "New Co",
        "plan": "FREE",
        "isCurrent": True,
    }
    upgraded = await stack.query(
        "mutation { upgradeTenant(plan: PROFESSIONAL) { id } }", owner_token
    )
    upgrade_id = upgraded["data"]["upgradeTenant"]["id"]
    await wait_result(stack.deps, context_of(ALICE.id, new_id), upgrade_id)
    async with asyncio.timeout(20):
        while True:
            found = await stack.query(tenant_query, owner_token, {"id": new_id})
            if found["data"]["tenant"]["plan"] == "PROFESSIONAL":
                break
            await asyncio.sleep(0.1)
    # A member that is no owner may not upgrade.
    member_token = issue_token(stack.deps.settings, context_of(ALICE.id, "globex", ("member",)))
    refused = await stack.query("mutation { upgradeTenant(plan: ENTERPRISE) { id } }", member_token)
    assert code(refused) == "FORBIDDEN"
    # A taken id is a clear input error.
    taken = await stack.query(
        'mutation { createTenant(input: {id: "acme", name: "Again"}) { id } }', token
    )
    assert code(taken) == "CONFLICT"
    invalid = await stack.query(
        'mutation { createTenant(input: {id: "X!", name: "Bad"}) { id } }', token
    )
    assert code(invalid) == "BAD_USER_INPUT"


async def test_another_tenants_ids_are_not_found(stack: Stack) -> None:
    bob = issue_token(stack.deps.settings, context_of(BOB.id, "globex"))
    body = await stack.query('{ tenant(id: "acme") { id name } }', bob)
    assert body["data"] is None
    assert code(body) == "NOT_FOUND"
    assert code(await stack.query('{ tenant(id: "no-such-tenant") { id } }', bob)) == "NOT_FOUND"
    # Entity references go through the same loader.
    entities = await stack.query(
        """query($r: [_Any!]!) { _entities(representations: $r) { ... on Tenant { id name } } }""",
        bob,
        {"r": [{"__typename": "Tenant", "id": "globex"}, {"__typename": "Tenant", "id": "acme"}]},
    )
    assert entities["data"]["_entities"][0] == {"id": "globex", "name": "Globex Corporation"}
    assert entities["data"]["_entities"][1] is None
    assert code(entities) == "NOT_FOUND"
    # Members only of the tenant the caller acts in.
    alice = issue_token(stack.deps.settings, context_of(ALICE.id, "acme"))
    members = await stack.query('{ tenant(id: "globex") { id members { userId } } }', alice)
    assert code(members) == "NOT_FOUND"
    # Another tenant's member cannot be changed.
    changed = await stack.query(
        "mutation($u: ID!) { changeMemberRole(userId: $u, roles: [VIEWER]) { previousRoles } }",
        alice,
        {"u": BOB.id},
    )
    assert code(changed) == "NOT_FOUND"
    switched = await stack.query(
        'mutation { switchTenant(tenantId: "acme") { accessToken } }',
        await stack.login(BOB.email, "globex"),
    )
    assert code(switched) == "NOT_FOUND"


async def test_invite_member_and_change_role_invalidate_the_member_list(stack: Stack) -> None:
    # Bob (globex) joins acme: alice is acme's owner.
    alice = issue_token(stack.deps.settings, context_of(ALICE.id, "acme"))
    members_query = '{ tenant(id: "acme") { members { userId roles status user { id } } } }'
    first = await stack.query(members_query, alice)
    assert BOB.id not in {m["userId"] for m in first["data"]["tenant"]["members"]}
    invited = await stack.query(
        """mutation($u: ID!) { inviteMember(input: {userId: $u, roles: [MEMBER]}) {
             member { userId tenantId roles status invitedBy user { id } }
             previousRoles operation { id } } }""",
        alice,
        {"u": BOB.id},
    )
    assert "errors" not in invited, invited
    change = invited["data"]["inviteMember"]
    assert change["operation"] is None
    assert change["previousRoles"] is None
    assert change["member"]["userId"] == BOB.id
    assert change["member"]["tenantId"] == "acme"
    assert change["member"]["roles"] == ["member"]
    assert change["member"]["status"] == "ACTIVE"
    assert change["member"]["user"] == {"id": BOB.id}
    listed = await stack.query(members_query, alice)  # the invalidated list, fetched again
    assert BOB.id in {m["userId"] for m in listed["data"]["tenant"]["members"]}
    again = await stack.query(
        "mutation($u: ID!) { inviteMember(input: {userId: $u}) { operation { id } } }",
        alice,
        {"u": BOB.id},
    )
    assert code(again) == "CONFLICT"

    changed = await stack.query(
        """mutation($u: ID!) { changeMemberRole(userId: $u, roles: [VIEWER]) {
             member { roles } previousRoles } }""",
        alice,
        {"u": BOB.id},
    )
    assert changed["data"]["changeMemberRole"] == {
        "member": {"roles": ["viewer"]},
        "previousRoles": ["member"],
    }
    listed = await stack.query(members_query, alice)
    roles = {m["userId"]: m["roles"] for m in listed["data"]["tenant"]["members"]}
    assert roles[BOB.id] == ["viewer"]
    # Bob's own view of acme: the viewer role.
    bob_in_acme = issue_token(stack.deps.settings, context_of(BOB.id, "acme", ("viewer",)))
    seen = await stack.query('{ tenant(id: "acme") { roles } }', bob_in_acme)
    assert seen["data"]["tenant"]["roles"] == ["viewer"]
    # A viewer may not manage members.
    denied = await stack.query(
        "mutation($u: ID!) { changeMemberRole(userId: $u, roles: [ADMIN]) { previousRoles } }",
        bob_in_acme,
        {"u": BOB.id},
    )
    assert code(denied) == "FORBIDDEN"


async def test_tenant_overview_aggregates_caches_and_degrades_per_part(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await stack.login(ALICE.email, "acme")
    body = await stack.query(OVERVIEW, token)
    assert "errors" not in body, body
    data = body["data"]["tenantOverview"]
    assert {t["id"] for t in data["availableTenants"]} >= {"acme", "globex"}
    assert data["currentTenant"]["tenant"] == {
        "id": "acme",
        "name": "Acme Corporation",
        "plan": "PROFESSIONAL",
    }
    assert data["currentTenant"]["memberCount"] >= 1
    assert data["permissions"]["can"] is True
    assert "files.delete" in data["permissions"]["granted"]

    # Cached per user and tenant: no gateway call, no workflow.
    calls = gateway_calls(stack.deps)
    started = workflow_starts(stack.deps, "get_tenant_data")
    assert await stack.query(OVERVIEW, token) == body
    assert gateway_calls(stack.deps) == calls
    assert workflow_starts(stack.deps, "get_tenant_data") == started

    # One failing part: a token whose session the auth service does not know fails the
    # permissions part only.
    no_session = issue_token(stack.deps.settings, context_of(BOB.id, "globex"))
    partial = await stack.query(OVERVIEW, no_session)
    data = partial["data"]["tenantOverview"]
    assert data["permissions"] is None
    assert data["currentTenant"]["tenant"]["id"] == "globex"
    assert "globex" in {t["id"] for t in data["availableTenants"]}
    assert [e["path"] for e in partial["errors"]] == [["tenantOverview", "permissions"]]
    assert partial["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # One slow part: past its timeout it is UNAVAILABLE, the others answer.
    monkeypatch.setitem(overview.PART_TIMEOUTS, "currentTenant", 0.001)
    slow = issue_token(stack.deps.settings, context_of(ALICE.id, "globex", ("member",)))
    partial = await stack.query(OVERVIEW, slow)
    data = partial["data"]["tenantOverview"]
    assert data["currentTenant"] is None
    assert {t["id"] for t in data["availableTenants"]} >= {"acme", "globex"}
    errors = {tuple(e["path"]): e["extensions"] for e in partial["errors"]}
    assert errors[("tenantOverview", "currentTenant")]["code"] == "UNAVAILABLE"


async def test_switch_tenant_returns_new_tokens(stack: Stack) -> None:
    token = await stack.login(ALICE.email, "acme")
    # Cache the overview in acme first: the switch must not leave it stale for the new token.
    await stack.query(OVERVIEW, token)
    body = await stack.query(
        """mutation { switchTenant(tenantId: "globex") {
             accessToken refreshToken expiresIn sessionId roles user { id }
             tenant { id name isCurrent } } }""",
        token,
    )
    assert "errors" not in body, body
    switched = body["data"]["switchTenant"]
    assert switched["roles"] == ["member"]
    assert switched["user"] == {"id": ALICE.id}
    assert switched["tenant"]["id"] == "globex"
    assert switched["expiresIn"] > 0
    new_token = switched["accessToken"]
    claims = await stack.deps.verifier.verify(new_token)
    assert claims.tid == "globex"
    overview_body = await stack.query(OVERVIEW, new_token)
    assert "errors" not in overview_body, overview_body
    data = overview_body["data"]["tenantOverview"]
    assert data["currentTenant"]["tenant"]["id"] == "globex"
    assert data["permissions"]["roles"] == ["member"]
    assert data["permissions"]["can"] is False
    # The old session has ended: a second switch with the old token is refused.
    refused = await stack.query('mutation { switchTenant(tenantId: "globex") { roles } }', token)
    assert "errors" in refused
    # Switching to the tenant one is in already is a conflict.
    same = await stack.query('mutation { switchTenant(tenantId: "globex") { roles } }', new_token)
    assert code(same) == "CONFLICT"
