"""Revocation counts before the access token expires: the verifier the gateway and the BFFs
use (adx/jwks.py with adx/sessions.py) refuses a token whose session ended (logout) and
acts with the roles the grant has now (a demotion), and one whose grant was suspended or
whose account was deactivated, asking the real auth service."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from adx.identity import InvalidToken
from adx.jwks import JwksVerifier
from adx.sessions import SHARED_PREFIX
from adx.settings import Settings
from contracts.auth import GrantStatus, GrantTenantAccessInput, SetAccountStatusInput, UserStatus
from contracts.context import RequestContext, use_context
from services.auth.activities import AuthActivities, AuthComponents, now_utc
from tests.services.auth.support import ALICE, BOB, bearer, login
from tests.support.servers import RedisServer
from tests.support.services import RunningService


def verifier_for(
    service: RunningService, http: httpx.AsyncClient, **update: object
) -> JwksVerifier:
    """As the gateway and the BFFs build theirs, pointed at this test's auth service."""
    settings: Settings = service.runtime.settings
    port = httpx.URL(service.url).port
    assert port is not None
    pointed = settings.model_copy(
        update={"ports": {**settings.ports, "auth": port}, "jwks_url": None, **update}
    )
    return JwksVerifier.from_settings(pointed, http)


async def test_a_logged_out_or_demoted_session_stops_counting(
    service: RunningService, http: httpx.AsyncClient
) -> None:
    store = service.runtime.components.get(AuthComponents).store
    tokens = await login(http, BOB.email)
    token = tokens["access_token"]
    async with httpx.AsyncClient() as client:
        # ttl 0: every verification asks (the setting bounds how late a change counts).
        fresh = verifier_for(service, client, session_check=True, session_check_seconds=0)
        cached = verifier_for(service, client, session_check=True, session_check_seconds=3600)
        assert "owner" in (await fresh.verify(token)).roles
        assert "owner" in (await cached.verify(token)).roles
        grant = await store.get_grant(BOB.id, "globex")
        assert grant is not None
        try:
            await store.upsert_grant(BOB.id, "globex", ["member"], GrantStatus.ACTIVE, now_utc())
            assert (await fresh.verify(token)).roles == ["member"]
            # Within its ttl a session's answer is reused: this is what the setting trades.
            assert "owner" in (await cached.verify(token)).roles
        finally:
            await store.upsert_grant(BOB.id, "globex", grant.roles, grant.status, now_utc())
        assert (await http.post("/api/auth/logout", headers=bearer(token))).status_code == 204
        with pytest.raises(InvalidToken):
            await fresh.verify(token)
        # Without the check the token would still pass until it expires.
        unchecked = verifier_for(service, client, session_check=False)
        assert (await unchecked.verify(token)).sub == BOB.id


async def test_deactivation_and_suspension_end_the_session_everywhere(
    service: RunningService, http: httpx.AsyncClient
) -> None:
    """The two other ways an account loses access before its token expires: its tenant grant
    suspended (its sessions in that tenant end), its account deactivated (all end)."""
    activities = AuthActivities(service.runtime.components.get(AuthComponents))
    globex_owner = RequestContext(user_id=BOB.id, tenant_id="globex", roles=("owner",))
    grant = await activities.store.get_grant(ALICE.id, "globex")
    assert grant is not None
    async with httpx.AsyncClient() as client:
        fresh = verifier_for(service, client, session_check=True, session_check_seconds=0)
        in_globex = (await login(http, ALICE.email, tenant_id="globex"))["access_token"]
        in_acme = (await login(http, ALICE.email, tenant_id="acme"))["access_token"]
        assert (await fresh.verify(in_globex)).tid == "globex"
        suspended = GrantTenantAccessInput(
            user_id=ALICE.id, tenant_id="globex", roles=grant.roles, status=GrantStatus.SUSPENDED
        )
        with use_context(globex_owner):
            await activities.grant_tenant_access(suspended)
        try:
            with pytest.raises(InvalidToken):
                await fresh.verify(in_globex)
            assert (await fresh.verify(in_acme)).tid == "acme"  # another tenant's goes on
        finally:
            with use_context(globex_owner):
                active = suspended.model_copy(update={"status": GrantStatus.ACTIVE})
                await activities.grant_tenant_access(active)
        deactivate = SetAccountStatusInput(user_id=ALICE.id, status=UserStatus.DEACTIVATED)
        with use_context(globex_owner):
            await activities.set_account_status(deactivate)
        try:
            with pytest.raises(InvalidToken):
                await fresh.verify(in_acme)
        finally:
            with use_context(globex_owner):
                reactivate = deactivate.model_copy(update={"status": UserStatus.ACTIVE})
                await activities.set_account_status(reactivate)


async def test_one_question_per_session_and_interval_shared_through_redis(
    service: RunningService, http: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    """Concurrent requests of one session whose answer is stale wait for one question to the
    auth service; with Redis, another process (here: another check) takes that answer for
    the interval instead of asking again, and a revocation still counts after it."""
    token = (await login(http, BOB.email))["access_token"]
    shared = aioredis.Redis.from_url(redis_server.url)
    async with httpx.AsyncClient() as client:
        checks = {
            "session_check": True,
            "session_check_seconds": 2.0,
            "redis_url": redis_server.url,
        }
        first = verifier_for(service, client, **checks)
        second = verifier_for(service, client, **checks)
        assert first.sessions is not None
        assert second.sessions is not None
        try:
            answers = await asyncio.gather(*(first.verify(token) for _ in range(20)))
            assert {claims.sub for claims in answers} == {BOB.id}
            assert first.sessions.questions == 1
            assert "owner" in (await second.verify(token)).roles
            assert second.sessions.questions == 0  # the first one's answer, from Redis
            assert len(await shared.keys(f"{SHARED_PREFIX}*")) == 1
            assert (await http.post("/api/auth/logout", headers=bearer(token))).status_code == 204
            await asyncio.sleep(2.1)  # the interval: the next verification asks again
            with pytest.raises(InvalidToken):
                await second.verify(token)
            with pytest.raises(InvalidToken):
                await first.verify(token)
            assert first.sessions.questions + second.sessions.questions == 2
        finally:
            await first.aclose()
            await second.aclose()
            await shared.aclose()
