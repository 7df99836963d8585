"""user_onboarding on the real dev server with the real auth, user and workflow services (and
the tenant stand-in): the success path end to end (invitation email, set password, login),
a failure injected at each step in turn, and a cancellation mid-way. After a failure or a
cancellation every store holds exactly what it held before."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from adx.settings import Settings
from contracts.auth import AuthActivity, UserStatus
from contracts.errors import ErrorKind
from contracts.names import WorkflowType
from contracts.operations import OperationStatus
from contracts.progress import EventKind
from contracts.tenant import TenantActivity
from contracts.user import UserActivity
from contracts.workflow import UserOnboardingInput, UserOnboardingResult
from services.auth.store import AuthStore
from services.user.store import UserStore
from tests.services.workflow.conftest import Stack, run_stack
from tests.services.workflow.support import (
    ALICE_IN_ACME,
    BOB_IN_GLOBEX,
    bearer,
    member_in_acme,
    tenant_members,
    unique_email,
)
from tests.support.smtp import Mailbox
from workflow_client.errors import WorkflowFailed

# (failing activity, the steps completed before it: compensated newest first)
STEPS = [
    (AuthActivity.CREATE_INVITED_USER, []),
    (UserActivity.CREATE_PROFILE, ["create_credentials"]),
    (TenantActivity.ADD_MEMBER, ["create_profile", "create_credentials"]),
    (
        AuthActivity.GRANT_TENANT_ACCESS,
        ["add_tenant_member", "create_profile", "create_credentials"],
    ),
    (
        UserActivity.INIT_PREFERENCES,
        ["grant_tenant_access", "add_tenant_member", "create_profile", "create_credentials"],
    ),
    (
        AuthActivity.SEND_INVITATION,
        [
            "init_workspace",
            "grant_tenant_access",
            "add_tenant_member",
            "create_profile",
            "create_credentials",
        ],
    ),
]


def onboarding_input(email: str, **extra: object) -> UserOnboardingInput:
    return UserOnboardingInput.model_validate(
        {"email": email, "display_name": "Nora Newcomer", "tenant_id": "acme", **extra}
    )


def _link_token(body: str) -> str:
    found = re.search(r"token=([A-Za-z0-9_\-]+)", body)
    assert found is not None, body
    return found.group(1)


async def test_onboarding_invites_the_user_everywhere(stack: Stack) -> None:
    email = unique_email("nora")
    response = await stack.http.post(
        f"{stack.workflow.url}/api/workflow/onboarding",
        json={
            "email": email,
            "display_name": "Nora Newcomer",
            "tenant_id": "acme",
            "roles": ["member"],
            "tenant_name": "Acme Corporation",
        },
        headers=bearer(stack.settings, ALICE_IN_ACME),
    )
    assert response.status_code == 202, response.text
    operation_id = response.json()["operation_id"]
    result = await stack.ops.result(ALICE_IN_ACME, operation_id, result_type=UserOnboardingResult)
    assert result.tenant_id == "acme"
    assert result.invited is True
    user_id = result.user_id

    # auth: an invited account (no usable password) with its grant in acme
    auth_store = AuthStore(stack.auth.runtime.db)
    account = await auth_store.get_user(user_id)
    assert account is not None
    assert account.email == email
    assert account.status is UserStatus.INVITED
    grant = await auth_store.get_grant(user_id, "acme")
    assert grant is not None
    assert grant.roles == ["member"]
    # user: profile, directory entry and default preferences in acme
    user_store = UserStore(stack.user.runtime.db)
    profile = await user_store.get_profile(user_id)
    assert profile is not None
    assert profile.display_name == "Nora Newcomer"
    membership = await user_store.membership(user_id, "acme")
    assert membership is not None
    assert membership.roles == ["member"]
    prefs = await user_store.get_preferences(user_id, "acme")
    assert prefs is not None
    assert prefs["locale"] == "en"
    # tenant: the membership
    async with stack.tenant_db.transaction() as session:
        roles = (
            await session.execute(
                select(tenant_members.c.roles).where(tenant_members.c.user_id == user_id)
            )
        ).scalar_one()
    assert roles == ["member"]

    # The welcome email arrived once over SMTP, with a set-password link; the secret is in
    # no workflow history event.
    [message] = await stack.mailbox.wait_for(email, 1)
    assert "Acme Corporation" in str(message["Subject"])
    body = message.get_content()
    token = _link_token(body)
    history = await stack.ops.client.get_workflow_handle(operation_id).fetch_history()
    assert token.encode() not in history.to_json().encode()

    # The link sets the password (auth's reset confirm) and activates the account.
    confirmed = await stack.http.post(
        f"{stack.auth.url}/api/auth/password-reset/confirm",
        json={"token": token, "new_password": "nora-chose-this-password"},
    )
    assert confirmed.status_code in (200, 202), confirmed.text
    login = await stack.http.post(
        f"{stack.auth.url}/api/auth/login",
        json={"email": email, "password": "nora-chose-this-password", "tenant_id": "acme"},
    )
    assert login.status_code == 200, login.text
    assert login.json()["roles"] == ["member"]
    account = await auth_store.get_user(user_id)
    assert account is not None
    assert account.status is UserStatus.ACTIVE
    # Single use.
    again = await stack.http.post(
        f"{stack.auth.url}/api/auth/password-reset/confirm",
        json={"token": token, "new_password": "another-long-password"},
    )
    assert again.status_code == 409

    # Monitoring: describe, history and list in the tenant; nothing for another tenant.
    headers = bearer(stack.settings, ALICE_IN_ACME)
    described = await stack.http.get(
        f"{stack.workflow.url}/api/workflow/operations/{operation_id}", headers=headers
    )
    assert described.status_code == 200
    assert described.json()["operation"]["status"] == "COMPLETED"
    assert described.json()["completed"] == 6
    steps = await stack.http.get(
        f"{stack.workflow.url}/api/workflow/operations/{operation_id}/history", headers=headers
    )
    completed = [s["step"] for s in steps.json()["steps"] if s["kind"] == "step_completed"]
    assert completed == [
        "create_credentials",
        "create_profile",
        "add_tenant_member",
        "grant_tenant_access",
        "init_workspace",
        "send_welcome_email",
    ]
    listed_ids: list[str] = []
    async with asyncio.timeout(20):  # visibility is eventually consistent
        while operation_id not in listed_ids:
            listed = await stack.http.get(
                f"{stack.workflow.url}/api/workflow/operations",
                params={"type": "user_onboarding"},
                headers=headers,
            )
            assert listed.status_code == 200
            listed_ids = [op["id"] for op in listed.json()["operations"]]
            await asyncio.sleep(0.2)
    other = bearer(stack.settings, BOB_IN_GLOBEX)
    for path in (f"operations/{operation_id}", f"operations/{operation_id}/history"):
        hidden = await stack.http.get(f"{stack.workflow.url}/api/workflow/{path}", headers=other)
        assert hidden.status_code == 404
    listed_other = await stack.http.get(
        f"{stack.workflow.url}/api/workflow/operations", headers=other
    )
    assert operation_id not in [op["id"] for op in listed_other.json()["operations"]]
    forged = await stack.http.get(
        f"{stack.workflow.url}/api/workflow/operations",
        params={"page_token": "not-a-token"},
        headers=headers,
    )
    assert forged.status_code == 422
    assert forged.json()["errors"][0]["field"] == "page_token"


async def test_onboarding_requests_are_checked(stack: Stack) -> None:
    url = f"{stack.workflow.url}/api/workflow/onboarding"
    admin = bearer(stack.settings, ALICE_IN_ACME)
    bad = await stack.http.post(
        url, json={"email": "not-an-email", "display_name": "", "tenant_id": "acme"}, headers=admin
    )
    assert bad.status_code == 422
    fields = {error["field"] for error in bad.json()["errors"]}
    assert {"email", "display_name"} <= fields
    body = {"email": unique_email("x"), "display_name": "X", "tenant_id": "acme"}
    # What the profile would refuse is refused here, before any workflow starts (the
    # onboarding's create_profile step once failed its workflow task on it, for ever).
    for zone, locale in (("0", "en"), ("Mars/Olympus_Mons", "en"), ("UTC", "EN_us")):
        unfit = await stack.http.post(
            url, json={**body, "timezone": zone, "locale": locale}, headers=admin
        )
        assert unfit.status_code == 422, unfit.text
        assert {error["field"] for error in unfit.json()["errors"]} & {"timezone", "locale"}
    member = await stack.http.post(
        url, json=body, headers=bearer(stack.settings, member_in_acme("someone"))
    )
    assert member.status_code == 403
    elsewhere = await stack.http.post(url, json={**body, "tenant_id": "globex"}, headers=admin)
    assert elsewhere.status_code == 404
    anonymous = await stack.http.post(url, json=body)
    assert anonymous.status_code == 401
    # Nothing was created by any of them.
    assert await AuthStore(stack.auth.runtime.db).user_by_email(body["email"]) is None


async def test_an_existing_account_is_a_conflict_and_changes_nothing(stack: Stack) -> None:
    before = await stack.snapshot()
    operation = await stack.ops.start(
        ALICE_IN_ACME,
        WorkflowType.USER_ONBOARDING.value,
        onboarding_input("bob@globex.test"),
    )
    with pytest.raises(WorkflowFailed) as failed:
        await stack.ops.result(ALICE_IN_ACME, operation.id, result_type=UserOnboardingResult)
    assert failed.value.kind is ErrorKind.CONFLICT
    assert await stack.snapshot() == before


@pytest.mark.parametrize(("failing", "compensated"), STEPS, ids=[str(s[0]) for s in STEPS])
async def test_a_failure_at_each_step_leaves_every_store_as_before(
    settings: Settings,
    tmp_path: Path,
    smtp_server: Mailbox,
    failing: str,
    compensated: list[str],
) -> None:
    async with run_stack(settings, tmp_path, smtp_server, fail=failing) as stack:
        email = unique_email("failing")
        before = await stack.snapshot()
        operation = await stack.ops.start(
            ALICE_IN_ACME, WorkflowType.USER_ONBOARDING.value, onboarding_input(email)
        )
        with pytest.raises(WorkflowFailed) as failed:
            await stack.ops.result(ALICE_IN_ACME, operation.id, result_type=UserOnboardingResult)
        assert failed.value.kind is ErrorKind.EXTERNAL_SERVICE
        assert failed.value.compensations == compensated
        after = await stack.snapshot()
        assert after == before
        assert smtp_server.to(email) == []
        events = (await stack.ops.progress(ALICE_IN_ACME, operation.id)).report.events
        undone = [e.step for e in events if e.kind is EventKind.COMPENSATION_COMPLETED]
        assert undone == compensated


async def test_cancelling_mid_way_compensates_every_completed_step(stack: Stack) -> None:
    """Cancelled while tenant.add_member is running: the workflow waits for that attempt (it
    commits a moment later), then undoes it with the steps before it."""
    email = unique_email("cancelled")
    before = await stack.snapshot()
    stack.tenant.gate = asyncio.Event()  # add_member holds until the test opens the gate
    operation = await stack.ops.start(
        ALICE_IN_ACME, WorkflowType.USER_ONBOARDING.value, onboarding_input(email)
    )
    async with asyncio.timeout(20):
        while stack.tenant.add_calls == 0:
            await asyncio.sleep(0.05)
    # Mid-way: credentials and profile exist now.
    assert await AuthStore(stack.auth.runtime.db).user_by_email(email) is not None
    await stack.ops.cancel(ALICE_IN_ACME, operation.id, "test")
    await asyncio.sleep(0.5)
    stack.tenant.gate.set()  # the running attempt commits after the cancellation
    with pytest.raises(WorkflowFailed):
        await stack.ops.result(ALICE_IN_ACME, operation.id, result_type=UserOnboardingResult)
    described = await stack.ops.describe(ALICE_IN_ACME, operation.id)
    assert described.status is OperationStatus.CANCELED
    assert await stack.snapshot() == before
    events = (await stack.ops.progress(ALICE_IN_ACME, operation.id)).report.events
    assert [e.step for e in events if e.kind is EventKind.COMPENSATION_COMPLETED] == [
        "add_tenant_member",
        "create_profile",
        "create_credentials",
    ]
    assert not any(e.step == "grant_tenant_access" for e in events)
    assert stack.mailbox.to(email) == []
