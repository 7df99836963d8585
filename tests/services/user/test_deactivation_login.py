"""user_deactivation with the REAL auth worker (and the auth HTTP API): a deactivated user
cannot log in; restore within the grace period and a cancel mid-way let them in again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from adx.settings import Settings
from contracts.auth import UserStatus as AuthUserStatus
from contracts.progress import EventKind
from contracts.user import DeactivationOutcome, UserDeactivationResult, UserStatus
from services.auth.activities import components, now_utc
from services.auth.security import hash_password
from services.auth.service import SERVICE as AUTH
from services.auth.store import AuthStore
from services.common.dev_seed import seed_user_id
from services.user.service import SERVICE as USER
from services.user.store import UserStore
from tests.services.user.support import ALICE_IN_ACME, bearer, wait_for_event
from tests.support.services import RunningService, running_service
from tests.support.smtp import Mailbox
from workflow_client.errors import WorkflowFailed

PASSWORD = "carols-password-123"


@dataclass
class Both:
    settings: Settings
    auth: RunningService
    user: RunningService
    auth_http: httpx.AsyncClient
    user_http: httpx.AsyncClient


@pytest.fixture
async def both(settings: Settings, tmp_path: Path, smtp_server: Mailbox) -> AsyncIterator[Both]:
    """The auth and user services, both modes, on one fresh database."""
    shared = settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'services.sqlite'}",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
        }
    )
    async with running_service(AUTH, shared) as auth:
        try:
            async with (
                running_service(USER, shared, client=auth.runtime.client) as user,
                httpx.AsyncClient(base_url=auth.url, timeout=30) as auth_http,
                httpx.AsyncClient(base_url=user.url, timeout=30) as user_http,
            ):
                yield Both(shared, auth, user, auth_http, user_http)
        finally:
            await components(auth.runtime).close()


async def _carol(both: Both) -> tuple[str, str]:
    """An active account (auth) and profile (user), member of acme in both."""
    email = f"carol-{uuid.uuid4().hex[:8]}@example.test"
    user_id = seed_user_id(email)
    now = now_utc()
    auth = AuthStore(both.auth.runtime.db)
    await auth.seed_user(user_id, email, await hash_password(PASSWORD), now)
    await auth.seed_grant(user_id, "acme", ("member",), now)
    await UserStore(both.user.runtime.db).seed_member(user_id, email, "Carol", "acme", ["member"])
    return user_id, email


async def _login(both: Both, email: str) -> httpx.Response:
    return await both.auth_http.post(
        "/api/auth/login", json={"email": email, "password": PASSWORD, "tenant_id": "acme"}
    )


async def _deactivate(both: Both, user_id: str) -> str:
    response = await both.user_http.post(
        f"/api/user/users/{user_id}/deactivate", headers=bearer(both.settings, ALICE_IN_ACME)
    )
    assert response.status_code == 202, response.text
    operation_id: str = response.json()["operation_id"]
    await wait_for_event(
        both.user.runtime.operations,
        ALICE_IN_ACME,
        operation_id,
        lambda e: e.step == "grace_period",
    )
    return operation_id


async def test_a_deactivated_user_cannot_log_in_until_restored(both: Both) -> None:
    carol, email = await _carol(both)
    assert (await _login(both, email)).status_code == 200
    operation_id = await _deactivate(both, carol)

    refused = await _login(both, email)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the account is deactivated"
    auth = components(both.auth.runtime)
    assert (await auth.store.get_user(carol)).status is AuthUserStatus.DEACTIVATED  # type: ignore[union-attr]
    # The session opened before is over too.
    assert all(s.revoked_at is not None for s in await auth.sessions.for_user(carol))

    restore = await both.user_http.post(
        f"/api/user/users/{carol}/restore", headers=bearer(both.settings, ALICE_IN_ACME)
    )
    assert restore.status_code == 202
    ops = both.user.runtime.operations
    result = await ops.result(ALICE_IN_ACME, operation_id, result_type=UserDeactivationResult)
    assert result.outcome is DeactivationOutcome.RESTORED
    assert (await _login(both, email)).status_code == 200
    profile = await UserStore(both.user.runtime.db).get_profile(carol)
    assert profile is not None
    assert profile.status is UserStatus.ACTIVE


async def test_cancelling_a_deactivation_lets_the_user_log_in_again(both: Both) -> None:
    carol, email = await _carol(both)
    operation_id = await _deactivate(both, carol)
    assert (await _login(both, email)).status_code == 401
    ops = both.user.runtime.operations
    await ops.cancel(ALICE_IN_ACME, operation_id, reason="wrong user")
    with pytest.raises(WorkflowFailed):
        await ops.result(ALICE_IN_ACME, operation_id)
    report = (await ops.progress(ALICE_IN_ACME, operation_id)).report
    compensated = [e.step for e in report.events if e.kind is EventKind.COMPENSATION_COMPLETED]
    assert compensated[0] == "deactivate_account"
    assert (await _login(both, email)).status_code == 200


async def test_an_account_deactivated_before_stays_deactivated_after_restore(both: Both) -> None:
    """The workflow reactivates only what it deactivated."""
    carol, email = await _carol(both)
    auth = components(both.auth.runtime)
    await auth.store.set_account_status(carol, AuthUserStatus.DEACTIVATED, now_utc())
    operation_id = await _deactivate(both, carol)
    restore = await both.user_http.post(
        f"/api/user/users/{carol}/restore", headers=bearer(both.settings, ALICE_IN_ACME)
    )
    assert restore.status_code == 202
    ops = both.user.runtime.operations
    result = await ops.result(ALICE_IN_ACME, operation_id, result_type=UserDeactivationResult)
    assert result.outcome is DeactivationOutcome.RESTORED
    assert (await auth.store.get_user(carol)).status is AuthUserStatus.DEACTIVATED  # type: ignore[union-attr]
    assert (await _login(both, email)).status_code == 401
