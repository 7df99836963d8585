"""Revocation counts before the access token expires: the verifier the gateway and the BFFs
use (adx/jwks.py with adx/sessions.py) refuses a token whose session ended (logout) and
acts with the roles the grant has now (a demotion), asking the real auth service."""

from __future__ import annotations

import httpx
import pytest

from adx.identity import InvalidToken
from adx.jwks import JwksVerifier
from adx.settings import Settings
from contracts.auth import GrantStatus
from services.auth.activities import AuthComponents, now_utc
from tests.services.auth.support import BOB, bearer, login
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
