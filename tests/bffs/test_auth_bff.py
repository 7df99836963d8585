"""The auth subgraph end to end: every contract operation through the real gateway to the real
auth service (server and worker: registration, password reset and MFA workflows on the
session's Temporal), with the emails arriving at a real SMTP server."""

from __future__ import annotations

import asyncio
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
from workflow_client.errors import OperationNotFound

Running = tuple[str, BffDependencies]

NEW_PASSWORD = "a-much-longer-new-password"
PAYLOAD = """accessToken refreshToken expiresIn tokenType sessionId email tenantId roles
  user { id email } tenant { id }"""
LOGIN = f"""mutation($email: String!, $password: String!, $tenant: ID, $totp: String,
  $recovery: String) {{ login(email: $email, password: $password, tenantId: $tenant,
  totpCode: $totp, recoveryCode: $recovery) {{ {PAYLOAD} }} }}"""
REFRESH = f"mutation($t: String!) {{ refreshToken(refreshToken: $t) {{ {PAYLOAD} }} }}"
ME = """{ me { user { id email } email status emailVerified mfaEnabled sessionId tenantId roles
  tenant { id } tenants { tenantId roles status tenant { id } } } }"""
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { id } }"
VERIFY = "mutation($t: String!) { verifyEmail(token: $t) { userId status operation { id } } }"
LOGOUT = "mutation { logout }"
REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(email: $e) { id } }"
RESET = """mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) {
  status sessionsRevoked operation { id } } }"""
SETUP_MFA = "mutation { setupMfa { id mfaSetup { secret otpauthUri expiresAt } } }"
# How the router asks this subgraph for Operation.mfaSetup (operation(id) { mfaSetup }).
MFA_SETUP_OF = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on Operation { id mfaSetup { secret otpauthUri expiresAt } } } }"""
RESET_OPERATION_ID = re.compile(r"^password_reset-anonymous-[0-9a-f]{32}$")
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
    assert tokens["user"] == {"id": data["userId"], "email": email}
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
    # No token: the user's id and email come from this subgraph, not the user subgraph.
    tokens = await login(url, "alice@acme.test", tenant="acme")
    assert tokens["user"] == {"id": ALICE.user_id, "email": "alice@acme.test"}
    assert (tokens["tenantId"], tokens["tenant"]) == ("acme", {"id": "acme"})
    assert tokens["roles"] == ["owner", "admin", "member"]

    me = await graphql(url, ME, token=tokens["accessToken"])
    data = me["data"]["me"]
    assert data["user"] == {"id": ALICE.user_id, "email": "alice@acme.test"}
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
    assert renewed["user"] == tokens["user"]
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
    url, deps = bff
    _user_id, email = await stack.add_member("olga")
    first = await login(url, email)
    nobody = unique_email("nobody")
    requested = await graphql(url, REQUEST_RESET, {"e": email})
    unknown = await graphql(url, REQUEST_RESET, {"e": nobody})
    # An operation either way, its id of the same form: nothing tells the addresses apart.
    operation_id = requested["data"]["requestPasswordReset"]["id"]
    other_id = unknown["data"]["requestPasswordReset"]["id"]
    assert RESET_OPERATION_ID.match(operation_id), requested
    assert RESET_OPERATION_ID.match(other_id), unknown
    assert operation_id != other_id
    # The auth service starts it just after answering.
    anonymous = RequestContext(user_id="anonymous", tenant_id=ANONYMOUS_TENANT)
    async with asyncio.timeout(30):
        while True:
            try:
                nobodys: dict[str, Any] = await deps.operations.result(anonymous, other_id)
                break
            except OperationNotFound:
                await asyncio.sleep(0.05)
    assert nobodys["status"] == "no_account"

    (message,) = await smtp_server.wait_for(email)
    token = link_token(message)
    too_short = await graphql(url, RESET, {"t": token, "p": "short"})
    assert codes(too_short) == ["BAD_USER_INPUT"]
    assert too_short["errors"][0]["extensions"]["fields"][0]["field"] == "newPassword"

    done = await graphql(url, RESET, {"t": token, "p": NEW_PASSWORD})
    data = done["data"]["resetPassword"]
    assert (data["status"], data["sessionsRevoked"]) == ("reset", 1)
    assert data["operation"] == {"id": operation_id}
    assert smtp_server.to(nobody) == []
    assert codes(await graphql(url, ME, token=first["accessToken"])) == ["UNAUTHENTICATED"]
    assert codes(await graphql(url, LOGIN, {"email": email, "password": PASSWORD})) == [
        "UNAUTHENTICATED"
    ]
    await login(url, email, NEW_PASSWORD)
    used = await graphql(url, RESET, {"t": token, "p": "a-third-password-here"})
    assert codes(used) == ["CONFLICT"]


async def mfa_setup_of(url: str, ids: list[str], token: str | None) -> list[Any]:
    """``Operation.mfaSetup`` of each id, as the router resolves it through this subgraph."""
    representations = [{"__typename": "Operation", "id": i} for i in ids]
    body = await graphql(url, MFA_SETUP_OF, {"r": representations}, token)
    assert "errors" not in body, body
    entities: list[dict[str, Any]] = body["data"]["_entities"]
    assert [entity["id"] for entity in entities] == ids
    return [entity["mfaSetup"] for entity in entities]


async def test_mfa_setup_and_confirm(bff: Running, stack: Stack) -> None:
    url, _deps = bff
    _user_id, email = await stack.add_member("pia")
    tokens = await login(url, email)
    access = tokens["accessToken"]

    started = await graphql(url, SETUP_MFA, token=access)
    setup = started["data"]["setupMfa"]
    operation_id = setup["id"]
    assert operation_id.startswith("mfa_setup-")
    challenge = setup["mfaSetup"]
    assert challenge["otpauthUri"].startswith("otpauth://totp/")
    assert f"secret={challenge['secret']}" in challenge["otpauthUri"]
    totp = pyotp.TOTP(challenge["secret"])
    # Shown again while it waits for the code; to the owner only.
    assert await mfa_setup_of(url, [operation_id], access) == [challenge]
    assert await mfa_setup_of(url, [operation_id], None) == [None]
    bob = await login(url, "bob@globex.test")
    assert await mfa_setup_of(url, [operation_id], bob["accessToken"]) == [None]

    wrong_code = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
    wrong = await graphql(url, CONFIRM_MFA, {"c": wrong_code}, access)
    assert codes(wrong) == ["BAD_USER_INPUT"]
    assert wrong["errors"][0]["message"] == "the code is not valid (4 attempts left)"
    assert await mfa_setup_of(url, [operation_id], access) == [challenge]

    confirmed = await graphql(url, CONFIRM_MFA, {"c": totp.now()}, access)
    data = confirmed["data"]["confirmMfa"]
    assert data["mfaEnabled"] is True
    assert len(set(data["recoveryCodes"])) == 10
    assert data["operation"] == {"id": operation_id}
    # Confirmed: the secret is not shown any more.
    assert await mfa_setup_of(url, [operation_id], access) == [None]
    me = await graphql(url, ME, token=access)
    assert me["data"]["me"]["mfaEnabled"] is True

    needs_code = await graphql(url, LOGIN, {"email": email, "password": PASSWORD})
    assert codes(needs_code) == ["UNAUTHENTICATED"]
    assert needs_code["errors"][0]["message"] == "a one-time code is required"
    assert needs_code["errors"][0]["extensions"]["fields"][0]["field"] == "totpCode"
    with_recovery = await login(url, email, recovery=data["recoveryCodes"][0])
    assert with_recovery["user"] == tokens["user"]


async def test_mfa_setup_is_shown_for_the_pending_setup_only(bff: Running, stack: Stack) -> None:
    url, _deps = bff
    _user_id, email = await stack.add_member("quinn")
    access = (await login(url, email))["accessToken"]
    first = (await graphql(url, SETUP_MFA, token=access))["data"]["setupMfa"]
    second = (await graphql(url, SETUP_MFA, token=access))["data"]["setupMfa"]
    assert first["mfaSetup"]["secret"] != second["mfaSetup"]["secret"]
    # The second setup replaced (cancelled) the first: only the second one shows its secret.
    assert await mfa_setup_of(url, [first["id"], second["id"]], access) == [
        None,
        second["mfaSetup"],
    ]

    # Other operations, of this user or not, have none, and asking costs no call to the auth
    # service unless the id is one of the caller's mfa_setup operations.
    registered = await graphql(
        url, REGISTER, {"i": {"email": unique_email("rex"), "password": PASSWORD}}
    )
    register_id = registered["data"]["register"]["id"]
    someone_elses = f"mfa_setup-{uuid.uuid4().hex}-{uuid.uuid4().hex}"
    calls = await stack.gateway_calls()
    assert await mfa_setup_of(url, [register_id, someone_elses, "not an id"], access) == [
        None,
        None,
        None,
    ]
    assert await mfa_setup_of(url, [second["id"]], None) == [None]
    assert await stack.gateway_calls() == calls
    # The mutations that return operations answer null for it as well.
    assert registered["data"]["register"] == {"id": register_id}
    no_challenge = await graphql(
        url,
        "mutation($i: RegisterInput!) { register(input: $i) { id mfaSetup { secret } } }",
        {"i": {"email": unique_email("sam"), "password": PASSWORD}},
    )
    assert no_challenge["data"]["register"]["mfaSetup"] is None


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
