"""user_registration, password_reset and mfa_setup on the real dev server, with the real
database and a real SMTP server receiving the emails."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pyotp
import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload

from contracts.auth import (
    ANONYMOUS_TENANT,
    ANONYMOUS_USER,
    DEFAULT_MFA_SETUP_EXPIRY_SECONDS,
    PasswordResetResult,
    PasswordResetStatus,
    UserRegistrationInput,
    UserRegistrationResult,
    UserStatus,
)
from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.names import WorkflowType
from contracts.operations import OperationStatus
from contracts.progress import EventKind
from services.auth.activities import AuthComponents, now_utc
from services.auth.models import MfaSecretRow, MfaSecretStatus
from services.auth.security import hash_password, new_totp_secret
from tests.services.auth.support import (
    ALICE,
    NEW_PASSWORD,
    PASSWORD,
    bearer,
    link_token,
    login,
    unique_email,
)
from tests.support.services import RunningService
from tests.support.smtp import Mailbox
from workflow_client.errors import OperationNotFound, WorkflowFailed

# Every password_reset operation id, known address or not: no user id in it.
RESET_OPERATION_ID = re.compile(r"^password_reset-anonymous-[0-9a-f]{32}$")


def parts_of(service: RunningService) -> AuthComponents:
    parts = service.runtime.components.get(AuthComponents)
    return parts


def anonymous(user_id: str) -> RequestContext:
    return RequestContext(user_id=user_id, tenant_id=ANONYMOUS_TENANT)


async def register(http: httpx.AsyncClient, email: str, **headers: str) -> str:
    response = await http.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 202, response.text
    operation_id: str = response.json()["operation_id"]
    return operation_id


async def active_user(service: RunningService, name: str) -> tuple[str, str]:
    email = unique_email(name)
    user_id = str(uuid.uuid4())
    await parts_of(service).store.seed_user(
        user_id, email, await hash_password(PASSWORD), now_utc()
    )
    return user_id, email


# user_registration --------------------------------------------------------------------------


async def test_registration_sends_a_link_and_the_link_activates_the_account(
    http: httpx.AsyncClient, service: RunningService, smtp_server: Mailbox
) -> None:
    email = unique_email("hana")
    operation_id = await register(http, email, **{"Idempotency-Key": "signup-1"})
    (message,) = await smtp_server.wait_for(email)
    assert message["Subject"] == "Verify your email address"
    token = link_token(message)
    assert f"/api/auth/verify?token={token}" in message.get_content()

    store = parts_of(service).store
    user = await store.user_by_email(email)
    assert user is not None
    assert user.status is UserStatus.PENDING
    login_early = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login_early.status_code == 401
    assert login_early.json()["detail"] == "the email address is not verified yet"

    # Registering again (same or another key) is the same operation: no second email.
    assert await register(http, email, **{"Idempotency-Key": "signup-1"}) == operation_id
    assert await register(http, email) == operation_id
    await asyncio.sleep(0.3)
    assert len(smtp_server.to(email)) == 1

    verified = await http.get("/api/auth/verify", params={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"user_id": user.id, "status": "active", "operation_id": operation_id}
    activated = await store.get_user(user.id)
    assert activated is not None
    assert activated.status is UserStatus.ACTIVE
    assert activated.email_verified_at is not None
    tokens = await login(http, email)
    assert tokens["user"]["id"] == user.id

    # The link works once; clicking it again just says the address is verified.
    again = await http.post("/api/auth/verify", json={"token": token})
    assert again.status_code == 200
    assert again.json()["status"] == "active"
    bogus = await http.get("/api/auth/verify", params={"token": "not-a-token"})
    assert bogus.status_code == 422

    result = await service.runtime.operations.result(
        anonymous(user.id), operation_id, result_type=UserRegistrationResult
    )
    assert result.user_id == user.id
    snapshot = await service.runtime.operations.progress(anonymous(user.id), operation_id)
    completed = [e.step for e in snapshot.report.events if e.kind is EventKind.STEP_COMPLETED]
    assert completed == ["send_verification_email", "verify_email", "activate_user"]
    assert snapshot.report.progress.completed == snapshot.report.progress.total == 3
    # Sent, the outbox copy no longer carries a usable link.
    (entry,) = await parts_of(service).outbox.recent(to=email)
    assert entry.sent_at is not None
    assert token not in entry.body


async def test_an_unverified_registration_expires_and_is_cleaned_up(
    http: httpx.AsyncClient, service: RunningService, smtp_server: Mailbox
) -> None:
    email = unique_email("ivan")
    store = parts_of(service).store
    user, _ = await store.register_pending_user(email, await hash_password(PASSWORD), now_utc())
    ops = service.runtime.operations
    operation = await ops.start(
        anonymous(user.id),
        WorkflowType.USER_REGISTRATION.value,
        UserRegistrationInput(user_id=user.id, expires_in_seconds=2),
    )
    (message,) = await smtp_server.wait_for(email)
    with pytest.raises(WorkflowFailed) as failed:
        await ops.result(anonymous(user.id), operation.id)
    assert failed.value.kind is ErrorKind.VALIDATION
    assert failed.value.message == "registration expired"
    assert failed.value.compensations == ["create_pending_user"]
    assert await store.get_user(user.id) is None
    assert await store.tokens_for_user(user.id) == []
    late = await http.get("/api/auth/verify", params={"token": link_token(message)})
    assert late.status_code == 422
    # The address is free again.
    assert await register(http, email) != operation.id


async def test_a_registration_into_a_tenant_must_start_in_that_tenant(
    service: RunningService,
) -> None:
    store = parts_of(service).store
    user, _ = await store.register_pending_user(unique_email("jo"), "hash", now_utc())
    ops = service.runtime.operations
    operation = await ops.start(
        RequestContext(user_id=ALICE.id, tenant_id="globex"),
        WorkflowType.USER_REGISTRATION.value,
        UserRegistrationInput(user_id=user.id, tenant_id="acme", roles=["admin"]),
    )
    with pytest.raises(WorkflowFailed) as failed:
        await ops.result(RequestContext(user_id=ALICE.id, tenant_id="globex"), operation.id)
    assert failed.value.kind is ErrorKind.TENANT_ISOLATION
    assert await store.get_user(user.id) is None  # compensated
    assert await store.get_grant(user.id, "acme") is None


# password_reset -----------------------------------------------------------------------------


async def test_password_reset_changes_the_password_once_and_ends_every_session(
    http: httpx.AsyncClient, service: RunningService, smtp_server: Mailbox
) -> None:
    user_id, email = await active_user(service, "kim")
    first = await login(http, email)
    second = await login(http, email)
    requested = await http.post("/api/auth/password-reset/request", json={"email": email})
    assert requested.status_code == 202
    operation_id = requested.json()["operation_id"]
    assert RESET_OPERATION_ID.match(operation_id), requested.json()
    (message,) = await smtp_server.wait_for(email)
    assert message["Subject"] == "Reset your password"
    token = link_token(message)

    short = await http.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
    )
    assert short.status_code == 422
    confirmed = await http.post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 200, confirmed.text
    done = confirmed.json()
    assert (done["status"], done["sessions_revoked"]) == ("reset", 2)
    assert done["operation_id"] == operation_id
    for tokens in (first, second):
        me = await http.get("/api/auth/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 401
        refresh = await http.post(
            "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refresh.status_code == 401
    old = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    await login(http, email, NEW_PASSWORD)

    # The same link a second time is refused and changes nothing.
    reused = await http.post(
        "/api/auth/password-reset/confirm",
        json={"token": token, "new_password": "a-third-password-here"},
    )
    assert reused.status_code == 409
    assert reused.json()["detail"] == "the link has already been used"
    third = await http.post(
        "/api/auth/login", json={"email": email, "password": "a-third-password-here"}
    )
    assert third.status_code == 401
    await login(http, email, NEW_PASSWORD)

    result = await service.runtime.operations.result(
        anonymous(user_id), done["operation_id"], result_type=PasswordResetResult
    )
    assert result == PasswordResetResult(
        user_id=user_id, sessions_revoked=2, status=PasswordResetStatus.RESET
    )


async def started(service: RunningService, context: RequestContext, operation_id: str) -> None:
    """Waits for an operation the API starts after it answered."""
    async with asyncio.timeout(30):
        while True:
            try:
                await service.runtime.operations.describe(context, operation_id)
            except OperationNotFound:
                await asyncio.sleep(0.05)
            else:
                return


async def test_a_reset_gets_an_operation_of_the_same_form_whether_the_address_has_an_account(
    http: httpx.AsyncClient, service: RunningService, smtp_server: Mailbox
) -> None:
    _user_id, known = await active_user(service, "nell")
    pending = unique_email("pending")
    await parts_of(service).store.register_pending_user(
        pending, await hash_password(PASSWORD), now_utc()
    )
    unknown = unique_email("nobody")
    answers = {}
    for email in (known, pending, unknown):
        response = await http.post("/api/auth/password-reset/request", json={"email": email})
        assert response.status_code == 202, response.text
        answers[email] = response.json()
    # The same answer, but for the id itself: the same keys, the same form of id.
    assert all(set(answer) == {"operation_id"} for answer in answers.values())
    ids = {email: answer["operation_id"] for email, answer in answers.items()}
    assert all(RESET_OPERATION_ID.match(i) for i in ids.values()), ids
    assert len(set(ids.values())) == 3

    # The known address gets its link; its operation waits for the reset.
    (message,) = await smtp_server.wait_for(known)
    assert message["Subject"] == "Reset your password"
    ops = service.runtime.operations
    anonymous_caller = anonymous(ANONYMOUS_USER)
    running = await ops.describe(anonymous_caller, ids[known])
    assert running.status is OperationStatus.RUNNING
    # Without an active account the operation ends at once, sending nothing.
    for email in (pending, unknown):
        await started(service, anonymous_caller, ids[email])
        result = await ops.result(anonymous_caller, ids[email], result_type=PasswordResetResult)
        assert result == PasswordResetResult(
            user_id=None, sessions_revoked=0, status=PasswordResetStatus.NO_ACCOUNT
        )
        snapshot = await ops.progress(anonymous_caller, ids[email])
        assert [e.kind for e in snapshot.report.events] == [EventKind.STARTED]
        assert smtp_server.to(email) == []
        # The address never travels into the workflow.
        assert email not in await _decoded_history(service, ids[email])
    assert known not in await _decoded_history(service, ids[known])


# mfa_setup ----------------------------------------------------------------------------------


async def _decoded_history(service: RunningService, workflow_id: str) -> str:
    """Every payload of the workflow's history, decrypted, as one string."""
    client = service.runtime.client
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    found: list[Payload] = []

    def collect(value: Any) -> None:
        if isinstance(value, Payload):
            found.append(value)
        elif hasattr(value, "ListFields"):
            for _field, inner in value.ListFields():
                collect(inner)
        elif isinstance(value, str | bytes | int | float):
            return
        elif callable(getattr(value, "values", None)):  # a map field
            for inner in value.values():
                collect(inner)
        elif hasattr(value, "__iter__"):  # a repeated field
            for inner in value:
                collect(inner)

    for event in history.events:
        collect(event)
    decoded = await client.data_converter.payload_codec.decode(found)  # type: ignore[union-attr]
    return " ".join(
        str(MessageToDict(payload)) + payload.data.decode(errors="replace") for payload in decoded
    )


async def test_mfa_setup_needs_a_valid_code_then_login_needs_a_second_factor(
    http: httpx.AsyncClient, service: RunningService
) -> None:
    user_id, email = await active_user(service, "lee")
    tokens = await login(http, email)
    headers = bearer(tokens["access_token"])
    started = await http.post("/api/auth/mfa/setup", headers=headers)
    assert started.status_code == 202, started.text
    setup = started.json()
    secret = setup["secret"]
    assert setup["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(secret)

    wrong_code = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
    wrong = await http.post("/api/auth/mfa/confirm", json={"code": wrong_code}, headers=headers)
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == "the code is not valid (4 attempts left)"
    user = await parts_of(service).store.get_user(user_id)
    assert user is not None
    assert not user.mfa_enabled

    confirmed = await http.post("/api/auth/mfa/confirm", json={"code": totp.now()}, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["mfa_enabled"]
    codes: list[str] = body["recovery_codes"]
    assert len(set(codes)) == 10
    store = parts_of(service).store
    user = await store.get_user(user_id)
    assert user is not None
    assert user.mfa_enabled
    assert await store.unused_recovery_codes(user_id) == 10
    (active,) = await store.mfa_secrets_for_user(user_id, MfaSecretStatus.ACTIVE)
    assert secret not in active.secret_ciphertext
    again = await http.post("/api/auth/mfa/setup", headers=headers)
    assert again.status_code == 409

    # Neither the secret nor a recovery code is anywhere in the workflow's (decrypted) history.
    history = await _decoded_history(service, setup["operation_id"])
    assert user_id in history  # the decoding works
    assert secret not in history
    assert not any(code in history for code in codes)

    no_code = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert no_code.status_code == 401
    assert no_code.json()["errors"][0]["field"] == "totp_code"
    code = totp.now()
    await login(http, email, totp_code=code)
    replayed = await http.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD, "totp_code": code}
    )
    assert replayed.status_code == 401
    await login(http, email, recovery_code=codes[0].upper())
    used = await http.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD, "recovery_code": codes[0]}
    )
    assert used.status_code == 401
    assert await store.unused_recovery_codes(user_id) == 9


async def test_mfa_setup_fails_after_too_many_wrong_codes(
    http: httpx.AsyncClient, service: RunningService
) -> None:
    user_id, email = await active_user(service, "max")
    headers = bearer((await login(http, email))["access_token"])
    setup = (await http.post("/api/auth/mfa/setup", headers=headers)).json()
    totp = pyotp.TOTP(setup["secret"])
    details = []
    for _ in range(5):
        wrong = f"{(int(totp.now()) + 7) % 1_000_000:06d}"
        response = await http.post("/api/auth/mfa/confirm", json={"code": wrong}, headers=headers)
        assert response.status_code == 422
        details.append(response.json()["detail"])
    assert details[-1] == "too many invalid codes: start the multi-factor setup again"
    context = RequestContext(user_id=user_id, tenant_id=(await login(http, email))["tenant_id"])
    with pytest.raises(WorkflowFailed) as failed:
        await service.runtime.operations.result(context, setup["operation_id"])
    assert failed.value.message == "too many invalid codes"
    assert failed.value.compensations == ["create_mfa_secret"]
    # The right code is too late now: the secret was discarded.
    late = await http.post("/api/auth/mfa/confirm", json={"code": totp.now()}, headers=headers)
    assert late.status_code == 409
    store = parts_of(service).store
    assert [s.status for s in await store.mfa_secrets_for_user(user_id)] == [
        MfaSecretStatus.DISCARDED
    ]
    user = await store.get_user(user_id)
    assert user is not None
    assert not user.mfa_enabled


async def test_the_pending_mfa_setup_is_shown_again_to_its_owner_until_it_ends(
    http: httpx.AsyncClient, service: RunningService
) -> None:
    _user_id, email = await active_user(service, "ora")
    headers = bearer((await login(http, email))["access_token"])
    assert (await http.get("/api/auth/mfa/setup")).status_code == 401
    none_yet = await http.get("/api/auth/mfa/setup", headers=headers)
    assert none_yet.status_code == 404
    assert none_yet.headers["content-type"].startswith("application/problem+json")

    started = await http.post("/api/auth/mfa/setup", headers=headers)
    assert started.status_code == 202
    assert started.headers["cache-control"] == "no-store"
    setup = started.json()
    shown = await http.get("/api/auth/mfa/setup", headers=headers)
    assert shown.status_code == 200, shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert shown.json() == setup

    # Another account has no setup of its own, and never sees this one.
    _other_id, other_email = await active_user(service, "otto")
    other = bearer((await login(http, other_email))["access_token"])
    assert (await http.get("/api/auth/mfa/setup", headers=other)).status_code == 404

    totp = pyotp.TOTP(setup["secret"])
    wrong = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
    assert (
        await http.post("/api/auth/mfa/confirm", json={"code": wrong}, headers=headers)
    ).status_code == 422
    assert (await http.get("/api/auth/mfa/setup", headers=headers)).json() == setup

    # A new setup replaces it.
    replaced = (await http.post("/api/auth/mfa/setup", headers=headers)).json()
    assert replaced["operation_id"] != setup["operation_id"]
    assert (await http.get("/api/auth/mfa/setup", headers=headers)).json() == replaced

    totp = pyotp.TOTP(replaced["secret"])
    confirmed = await http.post("/api/auth/mfa/confirm", json={"code": totp.now()}, headers=headers)
    assert confirmed.status_code == 200, confirmed.text
    assert (await http.get("/api/auth/mfa/setup", headers=headers)).status_code == 404


async def test_an_expired_mfa_setup_is_not_shown(
    http: httpx.AsyncClient, service: RunningService
) -> None:
    user_id, email = await active_user(service, "pat")
    headers = bearer((await login(http, email))["access_token"])
    parts = parts_of(service)
    lifetime = timedelta(seconds=DEFAULT_MFA_SETUP_EXPIRY_SECONDS)
    plain = new_totp_secret()

    async def pending_secret(created_at: datetime) -> str:
        secret_id = str(uuid.uuid4())
        await parts.store.add_mfa_secret(
            MfaSecretRow(
                id=secret_id,
                user_id=user_id,
                secret_ciphertext=parts.box.encrypt(plain, secret_id),
                status=MfaSecretStatus.PENDING,
                workflow_id=f"mfa_setup-x-{uuid.uuid4().hex}",
                created_at=created_at,
                confirmed_at=None,
                last_used_step=0,
            )
        )
        return secret_id

    # Its workflow is about to fail it (and discard the secret); the deadline counts already.
    expired = await pending_secret(now_utc() - lifetime - timedelta(seconds=1))
    assert (await http.get("/api/auth/mfa/setup", headers=headers)).status_code == 404
    await parts.store.discard_mfa_secret(expired)
    await pending_secret(now_utc() - lifetime + timedelta(minutes=1))
    shown = await http.get("/api/auth/mfa/setup", headers=headers)
    assert shown.status_code == 200
    assert shown.json()["secret"] == plain
