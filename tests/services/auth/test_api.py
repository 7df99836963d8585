"""The auth HTTP API over real HTTP, once with SQLite and sessions in the database, once with
PostgreSQL and sessions in Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from adx.identity import TokenType, TokenVerifier
from adx.settings import Settings
from contracts.auth import NO_TENANT, GrantStatus
from services.auth.activities import AuthComponents, now_utc
from services.auth.service import SERVICE
from services.auth.store import RedisSessionStore, SqlSessionStore
from tests.services.auth.conftest import service_settings
from tests.services.auth.support import (
    ALICE,
    BOB,
    PASSWORD,
    bearer,
    login,
    terminate_running_auth_workflows,
    unique_email,
)
from tests.support.servers import PostgresServer, RedisServer, create_database
from tests.support.services import RunningService, running_service
from tests.support.smtp import Mailbox


@pytest.fixture(scope="module", params=["sqlite-database-sessions", "postgres-redis-sessions"])
async def service(
    request: pytest.FixtureRequest,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: Mailbox,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> AsyncIterator[RunningService]:
    folder = tmp_path_factory.mktemp("auth-api")
    update: dict[str, Any] = {}
    if request.param == "postgres-redis-sessions":
        update["database_url"] = create_database(postgres_server, f"auth_{uuid.uuid4().hex[:10]}")
        update["redis_url"] = f"redis://127.0.0.1:{redis_server.port}/3"
    configured = service_settings(settings, folder, smtp_server, **update)
    async with running_service(SERVICE, configured) as running:
        parts = running.runtime.components.get(AuthComponents)
        if parts.redis is not None:
            await parts.redis.flushdb()
        try:
            yield running
        finally:
            await terminate_running_auth_workflows(running.runtime.client)
            await parts.close()


def parts_of(service: RunningService) -> AuthComponents:
    parts = service.runtime.components.get(AuthComponents)
    return parts


async def test_sessions_live_where_the_settings_say(service: RunningService) -> None:
    parts = parts_of(service)
    if service.runtime.settings.redis_url:
        assert isinstance(parts.sessions, RedisSessionStore)
    else:
        assert isinstance(parts.sessions, SqlSessionStore)


async def test_jwks_publishes_the_key_tokens_are_signed_with(
    http: httpx.AsyncClient, service: RunningService
) -> None:
    response = await http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    jwks = response.json()
    assert all(key["alg"] == "RS256" and key["kty"] == "RSA" for key in jwks["keys"])
    assert all("d" not in key for key in jwks["keys"])  # public halves only
    tokens = await login(http, ALICE.email)
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    assert kid in {key["kid"] for key in jwks["keys"]}
    settings = service.runtime.settings
    verifier = TokenVerifier(jwks, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    claims = verifier.verify(tokens["access_token"], TokenType.ACCESS)
    assert (claims.sub, claims.tid, claims.sid) == (ALICE.id, "acme", tokens["session_id"])


async def test_login_picks_the_first_tenant_or_the_one_asked_for(http: httpx.AsyncClient) -> None:
    tokens = await login(http, ALICE.email.upper())  # addresses are case-insensitive
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["user"] == {"id": ALICE.id, "email": ALICE.email}
    assert (tokens["tenant_id"], tokens["roles"]) == ("acme", ["owner", "admin", "member"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert (claims["tid"], claims["roles"], claims["typ"]) == ("acme", tokens["roles"], "access")
    globex = await login(http, ALICE.email, tenant_id="globex")
    assert (globex["tenant_id"], globex["roles"]) == ("globex", ["member"])


async def test_a_tenant_without_access_is_not_found(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/auth/login", json={"email": BOB.email, "password": PASSWORD, "tenant_id": "acme"}
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "tenant not found"


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    http: httpx.AsyncClient,
) -> None:
    wrong = await http.post(
        "/api/auth/login", json={"email": ALICE.email, "password": "not-her-password"}
    )
    unknown = await http.post(
        "/api/auth/login", json={"email": unique_email("nobody"), "password": "whatever-pass"}
    )
    assert wrong.status_code == unknown.status_code == 401

    def without_correlation(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k != "correlation_id"}

    assert without_correlation(wrong.json()) == without_correlation(unknown.json())
    assert wrong.json()["detail"] == "invalid email or password"


async def test_bad_input_is_422_with_field_errors(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/auth/login", json={"email": ALICE.email})
    assert response.status_code == 422
    assert {"field": "password", "message": "Field required"} in response.json()["errors"]


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(
    http: httpx.AsyncClient,
) -> None:
    first = await login(http, BOB.email)
    response = await http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["session_id"] == first["session_id"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["roles"] == ["owner", "admin", "member"]
    me = await http.get("/api/auth/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200

    reused = await http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert reused.json()["detail"] == "the refresh token was already used"
    # Someone replayed an old token: the whole session is over, the newest token too.
    after = await http.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    gone = await http.get("/api/auth/me", headers=bearer(second["access_token"]))
    assert gone.status_code == 401

    access_as_refresh = await http.post(
        "/api/auth/refresh", json={"refresh_token": second["access_token"]}
    )
    assert access_as_refresh.status_code == 401


async def test_logout_ends_the_session_for_every_endpoint(http: httpx.AsyncClient) -> None:
    tokens = await login(http, BOB.email)
    headers = bearer(tokens["access_token"])
    assert (await http.post("/api/auth/logout", headers=headers)).status_code == 204
    for method, path in [
        ("GET", "/api/auth/me"),
        ("GET", "/api/auth/sessions"),
        ("POST", "/api/auth/logout"),
        ("POST", "/api/auth/mfa/setup"),
    ]:
        response = await http.request(method, path, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["detail"] == "the session has ended"
    refresh = await http.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    assert (await http.get("/api/auth/me")).status_code == 401  # no token at all


async def test_sessions_are_listed_and_revoked_by_their_owner_only(
    http: httpx.AsyncClient, service: RunningService
) -> None:
    mine = await login(http, ALICE.email)
    other = await login(http, ALICE.email, tenant_id="globex")
    bobs = await login(http, BOB.email)
    listed = await http.get("/api/auth/sessions", headers=bearer(mine["access_token"]))
    assert listed.status_code == 200
    sessions = {s["id"]: s for s in listed.json()}
    assert {mine["session_id"], other["session_id"]} <= set(sessions)
    assert bobs["session_id"] not in sessions
    assert sessions[mine["session_id"]]["current"]
    assert not sessions[other["session_id"]]["current"]
    assert sessions[other["session_id"]]["tenant_id"] == "globex"

    # Bob cannot see or end Alice's session: it does not exist for him.
    foreign = await http.delete(
        f"/api/auth/sessions/{mine['session_id']}", headers=bearer(bobs["access_token"])
    )
    assert foreign.status_code == 404
    assert (await http.get("/api/auth/me", headers=bearer(mine["access_token"]))).status_code == 200

    ended = await http.delete(
        f"/api/auth/sessions/{other['session_id']}", headers=bearer(mine["access_token"])
    )
    assert ended.status_code == 204
    assert (
        await http.get("/api/auth/me", headers=bearer(other["access_token"]))
    ).status_code == 401
    record = await parts_of(service).sessions.get(other["session_id"])
    assert record is not None
    assert record.revoked_at is not None
    listed_again = await http.get("/api/auth/sessions", headers=bearer(mine["access_token"]))
    assert other["session_id"] not in {s["id"] for s in listed_again.json()}


async def test_me_shows_the_user_its_tenant_and_grants(http: httpx.AsyncClient) -> None:
    tokens = await login(http, ALICE.email, tenant_id="globex")
    response = await http.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    me = response.json()
    assert me["user"]["id"] == ALICE.id
    assert me["user"]["status"] == "active"
    assert not me["user"]["mfa_enabled"]
    assert (me["tenant_id"], me["roles"]) == ("globex", ["member"])
    assert {(g["tenant_id"], g["status"]) for g in me["tenants"]} == {
        ("acme", "active"),
        ("globex", "active"),
    }


async def test_permission_checks_follow_the_roles_in_the_tenant(
    http: httpx.AsyncClient, service: RunningService
) -> None:
    acme = bearer((await login(http, ALICE.email))["access_token"])
    globex = bearer((await login(http, ALICE.email, tenant_id="globex"))["access_token"])

    async def allowed(headers: dict[str, str], permission: str) -> bool:
        response = await http.post(
            "/api/auth/permissions/check", json={"permission": permission}, headers=headers
        )
        assert response.status_code == 200, response.text
        result: bool = response.json()["allowed"]
        return result

    assert await allowed(acme, "tenant.delete")
    assert not await allowed(globex, "tenant.delete")
    assert await allowed(globex, "files.write")
    unknown = await http.post(
        "/api/auth/permissions/check", json={"permission": "tenant.own_everything"}, headers=acme
    )
    assert unknown.status_code == 422
    # The store's grant counts, not the roles frozen into the token.
    await parts_of(service).store.upsert_grant(
        ALICE.id, "globex", ["member"], GrantStatus.SUSPENDED, now_utc()
    )
    try:
        assert not await allowed(globex, "files.read")
        refused = await http.post(
            "/api/auth/login",
            json={"email": ALICE.email, "password": PASSWORD, "tenant_id": "globex"},
        )
        assert refused.status_code == 404
    finally:
        await parts_of(service).store.upsert_grant(
            ALICE.id, "globex", ["member"], GrantStatus.ACTIVE, now_utc()
        )


async def test_registration_input_is_checked_before_anything_is_written(
    http: httpx.AsyncClient, service: RunningService
) -> None:
    email = unique_email("frank")
    short = await http.post("/api/auth/register", json={"email": email, "password": "short"})
    assert short.status_code == 422
    assert [e["field"] for e in short.json()["errors"]] == ["password"]
    bad_email = await http.post(
        "/api/auth/register", json={"email": "not-an-address", "password": "long-enough-pass"}
    )
    assert bad_email.status_code == 422
    assert [e["field"] for e in bad_email.json()["errors"]] == ["email"]
    assert await parts_of(service).store.user_by_email(email) is None

    taken = await http.post(
        "/api/auth/register", json={"email": ALICE.email.upper(), "password": "long-enough-pass"}
    )
    assert taken.status_code == 409


async def test_a_user_without_any_tenant_logs_in_to_no_tenant(
    http: httpx.AsyncClient, service: RunningService
) -> None:
    from services.auth.security import hash_password

    email = unique_email("gina")
    store = parts_of(service).store
    await store.seed_user(str(uuid.uuid4()), email, await hash_password(PASSWORD), now_utc())
    tokens = await login(http, email)
    assert (tokens["tenant_id"], tokens["roles"]) == (NO_TENANT, [])
    check = await http.post(
        "/api/auth/permissions/check",
        json={"permission": "tenant.read"},
        headers=bearer(tokens["access_token"]),
    )
    assert check.json()["allowed"] is False


async def test_dev_outbox_is_hidden_outside_dev(http: httpx.AsyncClient) -> None:
    response = await http.get("/dev/outbox")
    assert response.status_code == 404
