"""The user subgraph end to end: gateway, auth and user services (servers and workers), real
Temporal, the BFF's cache in a real Redis; the tenant and file read workflows have no worker
(the slow dashboard parts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from temporalio.client import Client

from adx.settings import Settings
from bffs.user.subgraph import SUBGRAPH
from contracts.context import RequestContext
from contracts.operations import OperationStatus
from graph.context import BffDependencies
from graph.tasks import pending
from tests.bffs.stack import (
    ALICE,
    ALICE_IN_GLOBEX,
    BOB,
    Stack,
    codes,
    metric,
    running_stack,
    running_subgraph,
)
from tests.support.bff import graphql
from tests.support.servers import RedisServer, run_redis
from tests.support.smtp import Mailbox

Running = tuple[str, BffDependencies]

USER = "query($id: ID!) { user(id: $id) { id displayName email roles status locale } }"
PREFERENCES = "{ preferences { theme language notifications { email inApp digest } } }"
UPDATE_PREFERENCES = """mutation($input: PreferencesInput!) { updatePreferences(input: $input) {
  theme language notifications { digest } dashboardWidgets } }"""
DASHBOARD = """{ dashboard { profile { id displayName roles } tenant { name memberCount }
  recentFiles { name owner { id } } recentActivity { kind summary actor { id } } } }"""
DASHBOARD_FAST = "{ dashboard { profile { displayName } recentActivity { kind summary } } }"
ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on User { id displayName roles } } }"""
DEACTIVATE = """mutation($id: ID!, $key: String) {
  deactivateUser(id: $id, reason: "test", requestKey: $key) { id } }"""
ONBOARD = """mutation($input: OnboardUserInput!) { onboardUser(input: $input) { id } }"""


@pytest.fixture(scope="module")
async def stack(
    settings: Settings,
    client: Client,
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: Mailbox,
) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("user-bff")
    async with running_stack(settings, client, folder, smtp_server) as running:
        yield running


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture(scope="module")
async def bff(stack: Stack, client: Client, redis: RedisServer) -> AsyncIterator[Running]:
    async with running_subgraph(SUBGRAPH, stack, client, redis.url) as running:
        yield running


async def member(stack: Stack, name: str) -> tuple[RequestContext, str]:
    user_id, _email = await stack.add_member(name)
    who = RequestContext(user_id=user_id, tenant_id="acme", roles=("member",))
    return who, stack.token(who)


async def starts(url: str, *types: str) -> float:
    counts = [await metric(url, "bff_workflow_starts_total", workflow_type=t) for t in types]
    return sum(counts)


# Reads through the gateway cache -------------------------------------------------------------


async def test_reads_are_cached_and_a_mutation_invalidates_them(bff: Running, stack: Stack) -> None:
    url, _deps = bff
    who, token = await member(stack, "erin")

    calls = await stack.gateway_calls()
    first = await graphql(url, USER, {"id": who.user_id}, token)
    assert first["data"]["user"] == {
        "id": who.user_id,
        "displayName": "Erin",
        "email": first["data"]["user"]["email"],
        "roles": ["member"],
        "status": "ACTIVE",
        "locale": "en",
    }
    assert await stack.gateway_calls() == calls + 1
    assert await graphql(url, USER, {"id": who.user_id}, token) == first
    assert await stack.gateway_calls() == calls + 1  # a cache hit reaches no service

    before = await graphql(url, PREFERENCES, token=token)
    assert before["data"]["preferences"]["theme"] == "SYSTEM"
    assert await graphql(url, PREFERENCES, token=token) == before
    calls = await stack.gateway_calls()
    updated = await graphql(
        url,
        UPDATE_PREFERENCES,
        {"input": {"theme": "DARK", "notifications": {"digest": "DAILY"}}},
        token,
    )
    assert updated["data"]["updatePreferences"] == {
        "theme": "DARK",
        "language": "en",  # what the input left out keeps its value
        "notifications": {"digest": "DAILY"},
        "dashboardWidgets": [],
    }
    after = await graphql(url, PREFERENCES, token=token)
    assert after["data"]["preferences"]["theme"] == "DARK"
    assert after["data"]["preferences"]["notifications"]["digest"] == "DAILY"
    # The mutation (read + PUT) and the read after it: the stale entry was not served.
    assert await stack.gateway_calls() == calls + 3

    invalid = await graphql(url, UPDATE_PREFERENCES, {"input": {"language": "not a tag"}}, token)
    assert codes(invalid) == ["BAD_USER_INPUT"]


async def test_directory_pages_and_user_fields_load_in_one_batch(
    bff: Running, stack: Stack
) -> None:
    url, _deps = bff
    token = stack.token(ALICE)
    prefix = f"dir{id(url) % 997}x"
    ids = [(await stack.add_member(f"{prefix}{index}"))[0] for index in range(5)]

    calls = await stack.gateway_calls()
    page = await graphql(
        url,
        """query($s: String) { users(search: $s, first: 3) {
             nodes { id displayName locale status createdAt }
             pageInfo { hasNextPage endCursor } } }""",
        {"s": prefix},
        token,
    )
    users = page["data"]["users"]
    assert len(users["nodes"]) == 3
    assert users["pageInfo"]["hasNextPage"] is True
    assert all(node["locale"] == "en" and node["status"] == "ACTIVE" for node in users["nodes"])
    # The page, then one batch for the fields a directory entry lacks (not one per user).
    assert await stack.gateway_calls() == calls + 2
    rest = await graphql(
        url,
        "query($s: String, $a: String) { users(search: $s, after: $a) { nodes { id } } }",
        {"s": prefix, "a": users["pageInfo"]["endCursor"]},
        token,
    )
    seen = [n["id"] for n in users["nodes"]] + [n["id"] for n in rest["data"]["users"]["nodes"]]
    assert sorted(seen) == sorted(ids)
    assert codes(await graphql(url, "{ users(first: 1000) { nodes { id } } }", token=token)) == [
        "BAD_USER_INPUT"
    ]


async def test_entity_references_resolve_in_one_batch_within_the_tenant(
    bff: Running, stack: Stack
) -> None:
    url, _deps = bff
    token = stack.token(ALICE)
    ids = [(await stack.add_member(f"ref{index}"))[0] for index in range(4)]
    outsider, _ = await stack.add_member("outsider", {"globex": ["member"]})
    representations = [{"__typename": "User", "id": i} for i in [*ids, outsider, ALICE.user_id]]

    calls = await stack.gateway_calls()
    body = await graphql(url, ENTITIES, {"r": representations}, token)
    assert await stack.gateway_calls() == calls + 1  # six references, one batch call
    entities = body["data"]["_entities"]
    assert [e["id"] for e in entities[:4]] == ids
    assert entities[5]["roles"] == ["owner", "admin", "member"]
    # Another tenant's user does not exist here.
    assert entities[4] is None
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["_entities", 4], "NOT_FOUND")
    ]
    # The same references again: the batch answer is cached.
    assert (await graphql(url, ENTITIES, {"r": representations}, token))["data"] == body["data"]
    assert await stack.gateway_calls() == calls + 1


# The dashboard ---------------------------------------------------------------------------


async def test_dashboard_answers_the_parts_that_answer_and_errors_on_the_slow_ones(
    bff: Running, stack: Stack
) -> None:
    url, deps = bff
    who, token = await member(stack, "grace")
    types = ("get_user_profile", "get_tenant_data", "get_recent_files", "get_recent_activity")
    before = await starts(url, *types)

    body = await graphql(url, DASHBOARD, token=token)
    dashboard = body["data"]["dashboard"]
    assert dashboard["profile"] == {"id": who.user_id, "displayName": "Grace", "roles": ["member"]}
    assert dashboard["recentActivity"] == []
    # No tenant or file worker: those parts miss their budget, each with its own error.
    assert dashboard["tenant"] is None
    assert dashboard["recentFiles"] is None
    errors = {tuple(e["path"]): e["extensions"] for e in body["errors"]}
    assert set(errors) == {("dashboard", "tenant"), ("dashboard", "recentFiles")}
    assert {e["code"] for e in errors.values()} == {"UNAVAILABLE"}
    assert await starts(url, *types) == before + 4  # all four started, in parallel

    # Nobody will read the abandoned parts: they are terminated, not left to a future worker.
    for extensions in errors.values():
        operation_id = extensions["operationId"]
        for _ in range(100):
            status = (await deps.operations.describe(who, operation_id)).status
            if status is OperationStatus.TERMINATED:
                break
            await asyncio.sleep(0.05)
        assert status is OperationStatus.TERMINATED


async def test_dashboard_parts_are_cached_per_user_and_invalidated_by_mutations(
    bff: Running, stack: Stack
) -> None:
    url, _deps = bff
    _who, token = await member(stack, "heidi")
    read_types = ("get_user_profile", "get_recent_activity")

    before = await starts(url, *read_types)
    first = await graphql(url, DASHBOARD_FAST, token=token)
    assert "errors" not in first, first
    assert first["data"]["dashboard"] == {"profile": {"displayName": "Heidi"}, "recentActivity": []}
    assert await starts(url, *read_types) == before + 2
    # A part nobody asked for starts no workflow; a cached part starts none either.
    assert await graphql(url, DASHBOARD_FAST, token=token) == first
    assert await starts(url, *read_types) == before + 2

    # Another user's dashboard is theirs: nothing is shared.
    _other, other_token = await member(stack, "ivan")
    other = await graphql(url, DASHBOARD_FAST, token=other_token)
    assert other["data"]["dashboard"]["profile"] == {"displayName": "Ivan"}
    assert await starts(url, *read_types) == before + 4

    await graphql(url, UPDATE_PREFERENCES, {"input": {"theme": "LIGHT"}}, token)
    after = await graphql(url, DASHBOARD_FAST, token=token)
    assert after["data"]["dashboard"]["recentActivity"] == [
        {"kind": "preferences.updated", "summary": "preferences updated"}
    ]
    assert await starts(url, *read_types) == before + 6


# Operations ---------------------------------------------------------------------------------


async def test_deactivate_user_starts_the_workflow_and_the_cached_user_goes_away(
    bff: Running, stack: Stack
) -> None:
    url, deps = bff
    target, _ = await stack.add_member("judy")
    token = stack.token(ALICE)
    seen = await graphql(url, USER, {"id": target}, token)
    assert seen["data"]["user"]["status"] == "ACTIVE"  # now cached for 30 s

    member_token = stack.token(RequestContext(user_id=target, tenant_id="acme", roles=("member",)))
    refused = await graphql(url, DEACTIVATE, {"id": ALICE.user_id}, member_token)
    assert codes(refused) == ["FORBIDDEN"]

    started = await graphql(url, DEACTIVATE, {"id": target, "key": "deactivate-judy"}, token)
    operation_id = started["data"]["deactivateUser"]["id"]
    assert operation_id.startswith("user_deactivation-")
    operation = await deps.operations.describe(ALICE, operation_id)
    assert operation.workflow_type == "user_deactivation"
    again = await graphql(url, DEACTIVATE, {"id": target, "key": "deactivate-judy"}, token)
    assert again["data"]["deactivateUser"]["id"] == operation_id

    # The workflow suspends the membership a moment later; the BFF invalidates the cached
    # user as its steps complete, so the change shows long before the 30 s TTL.
    for _ in range(100):
        body = await graphql(url, USER, {"id": target}, token)
        if codes(body) == ["NOT_FOUND"]:
            break
        await asyncio.sleep(0.1)
    assert codes(body) == ["NOT_FOUND"]
    assert pending(deps) >= 1  # the watch lasts a bounded window


async def test_onboard_user_starts_the_onboarding_workflow(bff: Running, stack: Stack) -> None:
    url, deps = bff
    token = stack.token(ALICE)
    started = await graphql(
        url,
        ONBOARD,
        {"input": {"email": "new.person@example.test", "displayName": "New Person"}},
        token,
    )
    operation_id = started["data"]["onboardUser"]["id"]
    operation = await deps.operations.describe(ALICE, operation_id)
    assert (operation.workflow_type, operation.tenant_id) == ("user_onboarding", "acme")

    invalid = await graphql(
        url, ONBOARD, {"input": {"email": "not-an-email", "displayName": ""}}, token
    )
    assert codes(invalid) == ["BAD_USER_INPUT"]
    fields = {f["field"] for f in invalid["errors"][0]["extensions"]["fields"]}
    assert fields == {"input.email", "input.displayName"}

    _who, member_token = await member(stack, "kim")
    refused = await graphql(
        url, ONBOARD, {"input": {"email": "x@example.test", "displayName": "X"}}, member_token
    )
    assert codes(refused) == ["FORBIDDEN"]


# Identity and isolation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (DASHBOARD_FAST, {}),
        (USER, {"id": "anyone"}),
        ("{ users { nodes { id } } }", {}),
        (PREFERENCES, {}),
        (UPDATE_PREFERENCES, {"input": {"theme": "DARK"}}),
        (DEACTIVATE, {"id": "anyone"}),
        (ONBOARD, {"input": {"email": "a@b.test", "displayName": "A"}}),
    ],
)
async def test_unauthenticated_is_refused(
    bff: Running, query: str, variables: dict[str, Any]
) -> None:
    assert codes(await graphql(bff[0], query, variables)) == ["UNAUTHENTICATED"]
    assert codes(await graphql(bff[0], query, variables, "not-a-token")) == ["UNAUTHENTICATED"]


async def test_another_tenants_ids_are_not_found(bff: Running, stack: Stack) -> None:
    url, _deps = bff
    token = stack.token(ALICE)
    for body in (
        await graphql(url, USER, {"id": BOB.user_id}, token),
        await graphql(url, USER, {"id": "no-such-user"}, token),
        await graphql(url, USER, {"id": ".."}, token),
        await graphql(url, DEACTIVATE, {"id": BOB.user_id}, token),
    ):
        assert codes(body) == ["NOT_FOUND"], body
    # Alice in globex is a member there: each tenant sees its own roles.
    in_globex = await graphql(url, USER, {"id": ALICE.user_id}, stack.token(ALICE_IN_GLOBEX))
    assert in_globex["data"]["user"]["roles"] == ["member"]
    bob_sees = await graphql(url, USER, {"id": ALICE.user_id}, stack.token(BOB))
    assert bob_sees["data"]["user"]["roles"] == ["member"]


# Redis down, metrics -------------------------------------------------------------------------


async def test_queries_still_answer_with_redis_stopped(stack: Stack, client: Client) -> None:
    with run_redis() as redis:
        async with running_subgraph(SUBGRAPH, stack, client, redis.url) as (url, _deps):
            who, token = await member(stack, "lou")
            calls = await stack.gateway_calls()
            first = await graphql(url, USER, {"id": who.user_id}, token)
            await graphql(url, USER, {"id": who.user_id}, token)
            assert await stack.gateway_calls() == calls + 1  # cached in this Redis

            redis.process.terminate()
            redis.process.wait(timeout=10)

            assert await graphql(url, USER, {"id": who.user_id}, token) == first
            assert await graphql(url, USER, {"id": who.user_id}, token) == first
            assert await stack.gateway_calls() == calls + 3  # no cache: every read goes through
            updated = await graphql(url, UPDATE_PREFERENCES, {"input": {"theme": "DARK"}}, token)
            assert updated["data"]["updatePreferences"]["theme"] == "DARK"
            dashboard = await graphql(url, DASHBOARD_FAST, token=token)
            assert dashboard["data"]["dashboard"]["profile"] == {"displayName": "Lou"}
            failed = await metric(url, "bff_cache_requests_total", result="error")
            bypassed = await metric(url, "bff_cache_requests_total", result="bypass")
            assert failed + bypassed > 0


async def test_metrics_show_fields_cache_workflows_and_errors(bff: Running, stack: Stack) -> None:
    url, _deps = bff
    token = stack.token(ALICE)
    await graphql(url, USER, {"id": ALICE.user_id}, token)
    await graphql(url, USER, {"id": ALICE.user_id}, token)
    await graphql(url, USER, {"id": BOB.user_id}, token)
    assert await metric(url, "bff_resolver_seconds_count", bff="user", field="user") >= 3
    assert await metric(url, "bff_resolver_seconds_count", field="dashboard.profile") >= 1
    assert await metric(url, "bff_cache_requests_total", result="hit") >= 1
    assert await metric(url, "bff_cache_requests_total", result="miss") >= 1
    assert await metric(url, "bff_workflow_starts_total", workflow_type="get_user_profile") >= 1
    assert await metric(url, "bff_workflow_starts_total", workflow_type="user_deactivation") >= 1
    assert await metric(url, "bff_errors_total", code="NOT_FOUND") >= 1
