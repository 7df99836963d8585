"""The auth subgraph end to end: every contract operation through the real gateway to the real
auth service (server and worker: registration, password reset and MFA workflows on the
session's Temporal), with the emails arriving at a real SMTP server."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import pyotp
import pytest
from temporalio.client import Client

from adx.settings import Settings
from bffs.auth.subgraph import SUBGRAPH
from contracts.auth import ANONYMOUS_TENANT
from contracts.context import RequestContext
from contracts.operations import OperationStatus
from graph.context import BffDependencies
from tests.bffs.stack import ALICE, PASSWORD, Stack, codes, metric, running_stack, running_subgraph
from tests.support.bff import graphql
from tests.support.smtp import Mailbox

Running = tuple[str, BffDependencies]

NEW_PASSWORD = "a-much-longer-new-password"
PAYLOAD = """accessToken refreshToken expiresIn tokenType sessionId email tenantId roles
  user { id } tenant { id }"""
LOGIN = f"""mutation($email: String!, $password: String!, $tenant: ID, $totp: String,
  $recovery: String) {{ login(email: $email, password: $password, tenantId: $tenant,
  totpCode: $totp, recoveryCode: $recovery) {{ {PAYLOAD} }} }}"""
REFRESH = f"mutation($t: String!) {{ refreshToken(refreshToken: $t) {{ {PAYLOAD} }} }}"
ME = """{ me { user { id } email status emailVerified mfaEnabled sessionId tenantId roles
  tenant { id } tenants { tenantId roles status tenant { id } } } }"""
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { id } }"
VERIFY = "mutation($t: String!) { verifyEmail(token: $t) { userId status operation { id } } }"
LOGOUT = "mutation { logout }"
REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(email: $e) { id } }"
RESET = """mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) {
  status sessionsRevoked operation { id } } }"""
SETUP_MFA = "mutation { setupMfa { operation { id } secret otpauthUri expiresAt } }"
CONFIRM_MFA = """mutation($c: String!) { confirmMfa(code: $c) {
  mfaEnabled recoveryCodes operation { id } } }"""


@pytest.fixture(scope="module")
async def stack(
    settings: Settings,
    client: Client,
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: Mailbox,
) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("auth-bff")
    async with running_stack(settings, client, folder, smtp_server) as running:
        yield running


@pytest.fixture(scope="module")
async def bff(stack: Stack, client: Client) -> AsyncIterator[Running]:
    # Nothing here is cached: the in-memory default is enough.
    async with running_subgraph(SUBGRAPH, stack, client, None) as running:
        yield running


def unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.test"


def link_token(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"token=([A-Za-z0-9_\-]+)", body.get_content())
    assert found is not None
    return found.group(1)


async def login(url: str, email: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    body = await graphql(url, LOGIN, {"email": email, "password": password, **extra})
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["login"]
    return payload


async def test_register_verify_and_first_login(
    bff: Running, stack: Stack, smtp_server: Mailbox
) -> None:
    url, deps = bff
    email = unique_email("nia")
    before = await metric(url, "bff_workflow_starts_total", workflow_type="user_registration")
    registered = await graphql(url, REGISTER, {"i": {"email": email, "password": PASSWORD}})
    operation_id = registered["data"]["register"]["id"]
    assert operation_id.startswith("user_registration-")
    assert await metric(url, "bff_workflow_starts_total", workflow_type="user_registration") == (
        before + 1
    )

    not_yet = await graphql(url, LOGIN, {"email": email, "password": PASSWORD})
    assert codes(not_yet) == ["UNAUTHENTICATED"]
    assert not_yet["errors"][0]["message"] == "the email address is not verified yet"

    (message,) = await smtp_server.wait_for(email)
    verified = await graphql(url, VERIFY, {"t": link_token(message)})
    data = verified["data"]["verifyEmail"]
    assert (data["status"], data["operation"]) == ("active", {"id": operation_id})
    registration = await deps.operations.describe(
        RequestContext(user_id=data["userId"], tenant_id=ANONYMOUS_TENANT), operation_id
    )
    assert registration.status is OperationStatus.COMPLETED

    tokens = await login(url, email)
    assert tokens["user"] == {"id": data["userId"]}
    assert (tokens["tenantId"], tokens["tenant"], tokens["roles"]) == (None, None, [])
    assert tokens["tokenType"] == "Bearer"
    assert tokens["expiresIn"] > 0

    bad_link = await graphql(url, VERIFY, {"t": "not-a-token"})
    assert codes(bad_link) == ["BAD_USER_INPUT"]
    weak = await graphql(url, REGISTER, {"i": {"email": unique_email("x"), "password": "short"}})
    assert codes(weak) == ["BAD_USER_INPUT"]
    assert weak["errors"][0]["extensions"]["fields"][0]["field"] == "password"


async def test_login_me_refresh_and_logout(bff: Running) -> None:
    url, _deps = bff
    tokens = await login(url, "alice@acme.test", tenant="acme")
    assert tokens["user"] == {"id": ALICE.user_id}
    assert (tokens["tenantId"], tokens["tenant"]) == ("acme", {"id": "acme"})
    assert tokens["roles"] == ["owner", "admin", "member"]

    me = await graphql(url, ME, token=tokens["accessToken"])
    data = me["data"]["me"]
    assert data["user"] == {"id": ALICE.user_id}
    assert (data["email"], data["status"], data["emailVerified"]) == (
        "alice@acme.test",
        "ACTIVE",
        True,
    )
    assert (data["tenantId"], data["sessionId"]) == ("acme", tokens["sessionId"])
    assert {t["tenantId"]: t["roles"] for t in data["tenants"]} == {
        "acme": ["owner", "admin", "member"],
        "globex": ["member"],
    }
    assert data["tenants"][0]["tenant"] == {"id": data["tenants"][0]["tenantId"]}

    refreshed = await graphql(url, REFRESH, {"t": tokens["refreshToken"]})
    renewed = refreshed["data"]["refreshToken"]
    assert renewed["sessionId"] == tokens["sessionId"]
    assert renewed["refreshToken"] != tokens["refreshToken"]
    # A refresh token works once; presenting it again ends the session.
    reused = await graphql(url, REFRESH, {"t": tokens["refreshToken"]})
    assert codes(reused) == ["UNAUTHENTICATED"]

    second = await login(url, "alice@acme.test", tenant="globex")
    assert second["roles"] == ["member"]
    assert (await graphql(url, LOGOUT, token=second["accessToken"]))["data"] == {"logout": True}
    # The session is over: the auth service refuses its (still unexpired) access token.
    assert codes(await graphql(url, ME, token=second["accessToken"])) == ["UNAUTHENTICATED"]
    assert codes(await graphql(url, REFRESH, {"t": second["refreshToken"]})) == ["UNAUTHENTICATED"]


async def test_wrong_credentials_and_another_tenant(bff: Running) -> None:
    url, _deps = bff
    wrong = await graphql(url, LOGIN, {"email": "alice@acme.test", "password": "wrong-password"})
    assert codes(wrong) == ["UNAUTHENTICATED"]
    assert wrong["errors"][0]["message"] == "invalid email or password"
    unknown = await graphql(url, LOGIN, {"email": unique_email("nobody"), "password": PASSWORD})
    assert unknown["errors"][0]["message"] == "invalid email or password"
    # Bob has no access to acme: to him it does not exist.
    other = await graphql(
        url, LOGIN, {"email": "bob@globex.test", "password": PASSWORD, "tenant": "acme"}
    )
    assert codes(other) == ["NOT_FOUND"]


async def test_password_reset(bff: Running, stack: Stack, smtp_server: Mailbox) -> None:
    url, _deps = bff
    _user_id, email = await stack.add_member("olga")
    first = await login(url, email)
    requested = await graphql(url, REQUEST_RESET, {"e": email})
    # The same answer for a known and an unknown address: no operation is disclosed.
    assert requested == {"data": {"requestPasswordReset": None}}
    assert await graphql(url, REQUEST_RESET, {"e": unique_email("nobody")}) == requested

    (message,) = await smtp_server.wait_for(email)
    token = link_token(message)
    too_short = await graphql(url, RESET, {"t": token, "p": "short"})
    assert codes(too_short) == ["BAD_USER_INPUT"]
    assert too_short["errors"][0]["extensions"]["fields"][0]["field"] == "newPassword"

    done = await graphql(url, RESET, {"t": token, "p": NEW_PASSWORD})
    data = done["data"]["resetPassword"]
    assert (data["status"], data["sessionsRevoked"]) == ("reset", 1)
    assert data["operation"]["id"].startswith("password_reset-")
    assert codes(await graphql(url, ME, token=first["accessToken"])) == ["UNAUTHENTICATED"]
    assert codes(await graphql(url, LOGIN, {"email": email, "password": PASSWORD})) == [
        "UNAUTHENTICATED"
    ]
    await login(url, email, NEW_PASSWORD)
    used = await graphql(url, RESET, {"t": token, "p": "a-third-password-here"})
    assert codes(used) == ["CONFLICT"]


async def test_mfa_setup_and_confirm(bff: Running, stack: Stack) -> None:
    url, _deps = bff
    _user_id, email = await stack.add_member("pia")
    tokens = await login(url, email)
    access = tokens["accessToken"]

    started = await graphql(url, SETUP_MFA, token=access)
    setup = started["data"]["setupMfa"]
    assert setup["operation"]["id"].startswith("mfa_setup-")
    assert setup["otpauthUri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(setup["secret"])

    wrong_code = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
    wrong = await graphql(url, CONFIRM_MFA, {"c": wrong_code}, access)
    assert codes(wrong) == ["BAD_USER_INPUT"]
    assert wrong["errors"][0]["message"] == "the code is not valid (4 attempts left)"

    confirmed = await graphql(url, CONFIRM_MFA, {"c": totp.now()}, access)
    data = confirmed["data"]["confirmMfa"]
    assert data["mfaEnabled"] is True
    assert len(set(data["recoveryCodes"])) == 10
    assert data["operation"] == setup["operation"]
    me = await graphql(url, ME, token=access)
    assert me["data"]["me"]["mfaEnabled"] is True

    needs_code = await graphql(url, LOGIN, {"email": email, "password": PASSWORD})
    assert codes(needs_code) == ["UNAUTHENTICATED"]
    assert needs_code["errors"][0]["message"] == "a one-time code is required"
    assert needs_code["errors"][0]["extensions"]["fields"][0]["field"] == "totpCode"
    with_recovery = await login(url, email, recovery=data["recoveryCodes"][0])
    assert with_recovery["user"] == tokens["user"]


@pytest.mark.parametrize(
    ("query", "variables"),
    [(ME, {}), (LOGOUT, {}), (SETUP_MFA, {}), (CONFIRM_MFA, {"c": "123456"})],
)
async def test_unauthenticated_is_refused(
    bff: Running, query: str, variables: dict[str, Any]
) -> None:
    assert codes(await graphql(bff[0], query, variables)) == ["UNAUTHENTICATED"]
    assert codes(await graphql(bff[0], query, variables, "forged.token.here")) == [
        "UNAUTHENTICATED"
    ]
