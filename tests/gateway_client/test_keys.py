"""Cache keys and tags are scoped by tenant and user: the same query with the same arguments
for another tenant or another user is another entry, and ids cannot be forged to collide."""

from __future__ import annotations

import itertools

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from contracts.context import RequestContext
from gateway_client import CacheKey, CacheScope, GatewayClient, RedisCache, tag, tenant_tag
from tests.gateway_client.standin import (
    ALICE,
    ALICE_GLOBEX,
    BOB,
    LogRecorder,
    StandInGateway,
    make_client,
)

pytestmark = pytest.mark.timeout(60)


def ctx(tenant: str, user: str, *roles: str) -> RequestContext:
    return RequestContext(tenant_id=tenant, user_id=user, roles=roles)


def test_same_query_and_arguments_give_the_same_key_whatever_their_order() -> None:
    first = CacheKey.build("user.profile", ALICE, {"a": 1, "b": [1, 2], "c": {"x": 1, "y": 2}})
    second = CacheKey.build("user.profile", ALICE, {"c": {"y": 2, "x": 1}, "b": [1, 2], "a": 1})
    assert str(first) == str(second)
    assert str(first).startswith("q:user.profile:t:acme:u:alice:")


def test_tenant_user_scope_arguments_query_and_roles_each_change_the_key() -> None:
    base = str(CacheKey.build("user.profile", ALICE, {"id": "1"}))
    variants = [
        CacheKey.build("user.profile", ALICE_GLOBEX, {"id": "1"}),
        CacheKey.build("user.profile", BOB, {"id": "1"}),
        CacheKey.build("user.profile", ALICE, {"id": "1"}, scope=CacheScope.TENANT),
        CacheKey.build("user.profile", ALICE, {"id": "2"}),
        CacheKey.build("user.teams", ALICE, {"id": "1"}),
        CacheKey.build("user.profile", ALICE.model_copy(update={"roles": ("admin",)}), {"id": "1"}),
    ]
    keys = [base, *(str(v) for v in variants)]
    assert len(set(keys)) == len(keys)


def test_tenant_shared_keys_are_shared_by_the_users_of_one_tenant_only() -> None:
    alice = CacheKey.build("tenant.settings", ALICE, scope=CacheScope.TENANT)
    bob = CacheKey.build("tenant.settings", BOB, scope=CacheScope.TENANT)
    other = CacheKey.build("tenant.settings", ALICE_GLOBEX, scope=CacheScope.TENANT)
    assert str(alice) == str(bob)
    assert str(alice) != str(other)
    assert alice.user_id is None


def test_ids_with_separators_cannot_forge_another_scope() -> None:
    """Tenant and user ids are percent-encoded: no choice of ids rebuilds another's key."""
    tricky = ["acme", "acme:u:alice", "a", "u", "*", "%2A", "alice", "acme:u", "alice:x", ":"]
    keys: dict[str, tuple[str, str | None]] = {}
    tags: dict[str, tuple[str, str | None]] = {}
    for tenant, user in itertools.product(tricky, [*tricky, None]):
        scope = CacheScope.TENANT if user is None else CacheScope.USER
        context = ctx(tenant, user or "someone")
        key = str(CacheKey.build("q", context, {"x": 1}, scope=scope))
        assert keys.setdefault(key, (tenant, user)) == (tenant, user), key
        name = tag(context, "profile", scope)
        assert tags.setdefault(name, (tenant, user)) == (tenant, user), name
    assert len(keys) == len(tricky) * (len(tricky) + 1)


def test_tags_are_tenant_scoped_strings() -> None:
    assert tag(ALICE, "profile") == "tenant:acme:user:alice:profile"
    assert tag(ALICE, "members", CacheScope.TENANT) == "tenant:acme:members"
    assert tag(ALICE, "profile", user_id="bob") == "tenant:acme:user:bob:profile"
    assert tag(ALICE_GLOBEX, "profile") != tag(ALICE, "profile")
    assert tenant_tag("a:b", "x", user_id="c") == "tenant:a%3Ab:user:c:x"
    with pytest.raises(ValueError, match="no user"):
        tag(ALICE, "members", CacheScope.TENANT, user_id="bob")
    with pytest.raises(ValueError, match="empty"):
        tag(ALICE, "")


async def test_two_tenants_and_two_users_get_separate_entries_in_redis(
    gateway: StandInGateway,
    redis_cache: RedisCache,
    redis_raw: aioredis.Redis,
    prefix: str,
    logs: LogRecorder,
) -> None:
    async with make_client(gateway, CollectorRegistry(), logs, cache=redis_cache) as client:

        async def read(context: RequestContext) -> object:
            return await client.get_json(
                context,
                "/api/user/profile",
                token="t",
                params={"fields": "all"},
                cache_ttl=60,
                tags=[tag(context, "profile")],
                query_name="user.profile",
            )

        first = {c.user_id + "@" + c.tenant_id: await read(c) for c in (ALICE, ALICE_GLOBEX, BOB)}
        assert gateway.called("GET", "/api/user/profile") == 3
        # Each caller's entry holds what the gateway answered that caller.
        assert len({str(v) for v in first.values()}) == 3

        again = {c.user_id + "@" + c.tenant_id: await read(c) for c in (ALICE, ALICE_GLOBEX, BOB)}
        assert again == first
        assert gateway.called("GET", "/api/user/profile") == 3

    entries = [k async for k in redis_raw.scan_iter(match=f"{prefix}e:*")]
    assert len(entries) == 3
    decoded = sorted(k.decode().removeprefix(f"{prefix}e:") for k in entries)
    assert [k.split(":")[3] + ":" + k.split(":")[5] for k in decoded] == [
        "acme:alice",
        "acme:bob",
        "globex:alice",
    ]


async def test_tenant_scoped_reads_are_shared_within_the_tenant_only(
    client: GatewayClient, gateway: StandInGateway
) -> None:
    for context in (ALICE, BOB, ALICE_GLOBEX, BOB):
        await client.get_json(
            context,
            "/api/user/profile",
            token="t",
            cache_ttl=60,
            cache_scope=CacheScope.TENANT,
            query_name="tenant.directory",
        )
    # acme once (Alice's read serves Bob), globex once.
    assert gateway.called("GET", "/api/user/profile") == 2
