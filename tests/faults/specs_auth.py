"""The auth service's sagas: registration (the emailed link clicked), password reset (the
emailed link confirmed with a new password) and MFA setup (the code confirmed). A person's
part runs beside the operation, over the auth service's HTTP API, as the browser does it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pyotp
from temporalio.api.enums.v1 import EventType

from adx.histories import (
    PASSWORD,
    Harness,
    _active_user,
    _anonymous,
    _auth_parts,
    _checked,
    _link_token,
    _login,
    _session,
)
from contracts.auth import (
    NO_TENANT,
    AuthActivity,
    MfaSetupResult,
    PasswordResetInput,
    UserRegistrationInput,
)
from contracts.context import RequestContext
from contracts.names import WorkflowType
from services.auth.security import hash_password
from tests.faults.harness import Arm, Prepared, SagaSpec, SagaStep, history_has, mentions
from workflow_client.operations import new_operation_id, operation_id_prefix

# Registration -------------------------------------------------------------------------------


async def prepare_registration(h: Harness) -> Prepared:
    email = f"signup-{uuid.uuid4().hex[:8]}@faults.test"
    # The caller is only known once the pending user exists (start): a placeholder.
    return Prepared(_anonymous("pending"), None, {"email": email})


async def register(h: Harness, prepared: Prepared, key: str, arm: Arm) -> str:
    """What the register endpoint does: the pending user, then its workflow."""
    user, _ = await _auth_parts(h).store.register_pending_user(
        prepared.facts["email"], await hash_password(PASSWORD), datetime.now(UTC)
    )
    context = _anonymous(user.id)
    prepared.context = context
    arm(new_operation_id(WorkflowType.USER_REGISTRATION.value, context, key))
    operation = await h.ops.start(
        context,
        WorkflowType.USER_REGISTRATION.value,
        UserRegistrationInput(user_id=user.id),
        request_key=key,
    )
    return operation.id


async def click_the_link(h: Harness, prepared: Prepared, operation_id: str) -> None:
    token = await _link_token(h, prepared.facts["email"])
    await h.http["auth"].get("/api/auth/verify", params={"token": token})


async def registered(h: Harness, prepared: Prepared, result: Any) -> None:
    (user,) = await mentions(h, "auth", "auth_users", prepared.facts["email"])
    assert user["status"] == "active"
    assert len(await mentions(h, "auth", "auth_email_outbox", prepared.facts["email"])) == 1


REGISTRATION = SagaSpec(
    workflow_type=WorkflowType.USER_REGISTRATION,
    steps=(
        SagaStep(
            "send_verification_email", AuthActivity.SEND_VERIFICATION_EMAIL, compensated=False
        ),
        SagaStep("verify_email", AuthActivity.VERIFY_EMAIL_TOKEN, compensated=False),
        SagaStep("activate_user", AuthActivity.ACTIVATE_USER),
    ),
    prepare=prepare_registration,
    applied=registered,
    start=register,
    drive=click_the_link,
    initial_compensations=("create_pending_user",),
    # The verification email was sent: it stays sent (its link is dead once undone).
    bookkeeping=frozenset({("auth", "auth_email_outbox")}),
)

# Password reset -----------------------------------------------------------------------------

NEW_PASSWORD = "a-brand-new-password-42"


async def prepare_reset(h: Harness) -> Prepared:
    user_id, email = await _active_user(h)
    session_id = await _session(h, user_id, "acme")
    reset = PasswordResetInput(user_id=user_id)
    return Prepared(_anonymous(user_id), reset, {"email": email, "session": session_id})


async def confirm_the_reset(h: Harness, prepared: Prepared, operation_id: str) -> None:
    # The person clicks once the request is waiting for them (a click while the email is
    # still being sent, with a cancel, is tests/faults/test_password_reset_race.py's).
    await history_has(h, operation_id, EventType.EVENT_TYPE_TIMER_STARTED)
    token = await _link_token(h, prepared.facts["email"])
    await h.http["auth"].post(
        "/api/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    await asyncio.sleep(0)


async def reset_done(h: Harness, prepared: Prepared, result: Any) -> None:
    (session,) = await mentions(h, "auth", "auth_sessions", prepared.facts["session"])
    assert session["revoked_at"] is not None  # every session ended
    login = await h.http["auth"].post(
        "/api/auth/login", json={"email": prepared.facts["email"], "password": NEW_PASSWORD}
    )
    assert login.status_code == 200, login.text


PASSWORD_RESET = SagaSpec(
    workflow_type=WorkflowType.PASSWORD_RESET,
    steps=(
        SagaStep("send_reset_email", AuthActivity.SEND_PASSWORD_RESET_EMAIL),
        SagaStep("await_reset", AuthActivity.CHECK_PASSWORD_RESET, compensated=False),
        SagaStep("revoke_sessions", AuthActivity.REVOKE_USER_SESSIONS, compensated=False),
    ),
    prepare=prepare_reset,
    applied=reset_done,
    drive=confirm_the_reset,
    # Once the person changed the password, the sessions end whatever a cancel says.
    pivot="await_reset",
    pivot_at_start=True,
    # The email went out; its token is kept, expired, so the link in it grants nothing.
    bookkeeping=frozenset({("auth", "auth_email_outbox"), ("auth", "auth_tokens")}),
)


# MFA setup ----------------------------------------------------------------------------------


async def prepare_mfa(h: Harness) -> Prepared:
    user_id, email = await _active_user(h)
    # Signed in beforehand: the session is the person's, not the setup's.
    headers = await _login(h, email)
    # The caller of a user in no tenant, as the login's token says.
    context = RequestContext(user_id=user_id, tenant_id=NO_TENANT)
    return Prepared(context, None, {"user_id": user_id, "headers": headers})


async def set_up_mfa(h: Harness, prepared: Prepared, key: str, arm: Arm) -> str:
    """What the person does in the browser: POST /api/auth/mfa/setup. The endpoint names its
    operation with a fresh uuid (it takes no idempotency key), so the fault is armed for this
    fresh user's mfa_setup operations (the ids' prefix); the run starts exactly one."""
    arm(operation_id_prefix(WorkflowType.MFA_SETUP.value, prepared.context).rstrip("-"))
    setup = _checked(
        await h.http["auth"].post("/api/auth/mfa/setup", headers=prepared.facts["headers"]), 202
    )
    prepared.facts["secret"] = setup["secret"]
    return str(setup["operation_id"])


async def confirm_the_code(h: Harness, prepared: Prepared, operation_id: str) -> None:
    code = pyotp.TOTP(prepared.facts["secret"]).now()
    await h.http["auth"].post(
        "/api/auth/mfa/confirm", headers=prepared.facts["headers"], json={"code": code}
    )


async def mfa_enabled(h: Harness, prepared: Prepared, result: Any) -> None:
    assert MfaSetupResult.model_validate(result).mfa_enabled
    user_id = prepared.facts["user_id"]
    (user,) = await mentions(h, "auth", "auth_users", user_id)
    assert user["mfa_enabled"]
    assert len(await mentions(h, "auth", "auth_mfa_secrets", user_id, "'active'")) == 1


MFA_SETUP = SagaSpec(
    workflow_type=WorkflowType.MFA_SETUP,
    steps=(
        SagaStep("confirm_code", AuthActivity.VERIFY_MFA_CODE, compensated=False, read=True),
        SagaStep("enable_mfa", AuthActivity.ENABLE_MFA, compensated=False),
    ),
    prepare=prepare_mfa,
    applied=mfa_enabled,
    start=set_up_mfa,
    drive=confirm_the_code,
    initial_compensations=("create_mfa_secret",),
    # Once MFA is on (and the recovery codes handed out), the setup stands.
    pivot="enable_mfa",
    # The setup endpoint's secret row stays, marked discarded: it can never be confirmed.
    bookkeeping=frozenset({("auth", "auth_mfa_secrets")}),
)

SPECS = (REGISTRATION, PASSWORD_RESET, MFA_SETUP)
