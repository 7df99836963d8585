"""The auth service's scenarios: registration, password reset and MFA setup, driven over
the auth HTTP API where a person starts them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.client import WorkflowExecutionStatus

from adx.histories.scenarios.fixtures import (
    PASSWORD,
    _active_user,
    _anonymous,
    _auth_parts,
    _checked,
    _link_token,
    _unique,
)
from adx.histories.scenarios.registry import Recorded, _compensated, recorded, scenario
from adx.histories.stack import MFA_ATTEMPTS, SCENARIO_TIMEOUT, Harness
from contracts.names import WorkflowType


@scenario(WorkflowType.USER_REGISTRATION)
async def registration_verified(h: Harness) -> list[Recorded]:
    """Register over HTTP, click the emailed link (the verify_email signal)."""
    email = f"{_unique('signup')}@histories.test"
    auth = h.http["auth"]
    started = _checked(
        await auth.post("/api/auth/register", json={"email": email, "password": PASSWORD}), 202
    )
    verified = _checked(
        await auth.get("/api/auth/verify", params={"token": await _link_token(h, email)}), 200
    )
    assert verified["status"] == "active", verified
    return recorded(WorkflowType.USER_REGISTRATION, "success", started["operation_id"])


@scenario(WorkflowType.USER_REGISTRATION)
async def registration_expired(h: Harness) -> list[Recorded]:
    """Nobody clicks: the deadline timer fires and the pending user is removed."""
    from contracts.auth import UserRegistrationInput
    from services.auth.security import hash_password

    user, _ = await _auth_parts(h).store.register_pending_user(
        f"{_unique('late')}@histories.test", await hash_password(PASSWORD), datetime.now(UTC)
    )
    context = _anonymous(user.id)
    workflow_id, _ = await h.start(
        context,
        WorkflowType.USER_REGISTRATION,
        UserRegistrationInput(user_id=user.id, expires_in_seconds=1),
    )
    failed = await h.fails(context, workflow_id)
    _compensated(failed, "create_pending_user")
    return recorded(WorkflowType.USER_REGISTRATION, "expired-compensated", workflow_id)


@scenario(WorkflowType.PASSWORD_RESET)
async def password_reset_confirmed(h: Harness) -> list[Recorded]:
    """Request a reset over HTTP, confirm it with the emailed link (reset_password signal)."""
    _, email = await _active_user(h)
    auth = h.http["auth"]
    _checked(await auth.post("/api/auth/password-reset/request", json={"email": email}), 202)
    token = await _link_token(h, email)
    done = _checked(
        await auth.post(
            "/api/auth/password-reset/confirm",
            json={"token": token, "new_password": "another-long-password"},
        ),
        200,
    )
    workflow_id = done.get("operation_id")
    assert workflow_id, done
    return recorded(WorkflowType.PASSWORD_RESET, "success", str(workflow_id))


@scenario(WorkflowType.PASSWORD_RESET)
async def password_reset_expired(h: Harness) -> list[Recorded]:
    from contracts.auth import PasswordResetInput

    user_id, _ = await _active_user(h)
    context = _anonymous(user_id)
    workflow_id, _ = await h.start(
        context,
        WorkflowType.PASSWORD_RESET,
        PasswordResetInput(user_id=user_id, expires_in_seconds=1),
    )
    failed = await h.fails(context, workflow_id)
    assert failed.message == "password reset expired", failed.message
    return recorded(WorkflowType.PASSWORD_RESET, "expired-compensated", workflow_id)


@scenario(WorkflowType.PASSWORD_RESET)
async def password_reset_no_account(h: Harness) -> list[Recorded]:
    """A reset asked over HTTP for an address without an account: its operation ends at once,
    sending nothing."""
    from contracts.auth import ANONYMOUS_USER

    email = f"{_unique('nobody')}@histories.test"
    requested = _checked(
        await h.http["auth"].post("/api/auth/password-reset/request", json={"email": email}),
        202,
    )
    workflow_id = str(requested["operation_id"])
    result = await h.completes(_anonymous(ANONYMOUS_USER), workflow_id)
    assert result["status"] == "no_account", result
    assert await _auth_parts(h).outbox.recent(to=email) == [], "an email was sent"
    return recorded(WorkflowType.PASSWORD_RESET, "no-account", workflow_id)


async def _login(h: Harness, email: str) -> dict[str, str]:
    tokens = _checked(
        await h.http["auth"].post("/api/auth/login", json={"email": email, "password": PASSWORD}),
        200,
    )
    return {"authorization": f"Bearer {tokens['access_token']}"}


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


@scenario(WorkflowType.MFA_SETUP)
async def mfa_confirmed(h: Harness) -> list[Recorded]:
    """Set up MFA over HTTP: a wrong code first (rejected, the setup keeps waiting), then
    the right one."""
    import pyotp

    _, email = await _active_user(h)
    headers = await _login(h, email)
    auth = h.http["auth"]
    setup = _checked(await auth.post("/api/auth/mfa/setup", headers=headers), 202)
    code = pyotp.TOTP(setup["secret"]).now()
    rejected = await auth.post(
        "/api/auth/mfa/confirm", headers=headers, json={"code": _wrong(code)}
    )
    assert rejected.status_code == 422, rejected.text
    confirmed = _checked(
        await auth.post("/api/auth/mfa/confirm", headers=headers, json={"code": code}), 200
    )
    assert confirmed["mfa_enabled"] is True, confirmed
    return recorded(WorkflowType.MFA_SETUP, "success-after-wrong-code", setup["operation_id"])


@scenario(WorkflowType.MFA_SETUP)
async def mfa_too_many_codes(h: Harness) -> list[Recorded]:
    """Wrong codes until none is left (the recorder's API allows 2): the secret is dropped."""
    import pyotp

    _, email = await _active_user(h)
    headers = await _login(h, email)
    auth = h.http["auth"]
    setup = _checked(await auth.post("/api/auth/mfa/setup", headers=headers), 202)
    code = pyotp.TOTP(setup["secret"]).now()
    for _ in range(MFA_ATTEMPTS):
        refused = await auth.post(
            "/api/auth/mfa/confirm", headers=headers, json={"code": _wrong(code)}
        )
        assert refused.status_code == 422, refused.text
    await _wait_closed(h, setup["operation_id"], WorkflowExecutionStatus.FAILED)
    return recorded(WorkflowType.MFA_SETUP, "too-many-codes-compensated", setup["operation_id"])


async def _wait_closed(h: Harness, workflow_id: str, status: WorkflowExecutionStatus) -> None:
    handle = h.client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(SCENARIO_TIMEOUT):
        while (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
            await asyncio.sleep(0.05)
    await h.expect_status(workflow_id, status)
