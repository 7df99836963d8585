"""compliance_export and compliance_erase across the real auth, user and workflow services
(and the tenant stand-in): one archive only its user can download, with no secret in it; an
erasure that leaves no personal data in any table and an audit record that survives it."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime

import pytest

from contracts.context import RequestContext
from contracts.errors import ErrorKind
from contracts.names import WorkflowType
from contracts.user import ActivityEntry, ActivityKind
from contracts.workflow import (
    ComplianceEraseInput,
    ComplianceEraseResult,
    ComplianceExportInput,
    ComplianceExportResult,
    UserOnboardingInput,
    UserOnboardingResult,
)
from services.user.store import UserStore
from services.workflow.activities import SELF_REQUESTED, exports_dir, pseudonym
from services.workflow.store import WorkflowStore
from tests.services.workflow.conftest import Stack
from tests.services.workflow.support import (
    ALICE,
    ALICE_IN_ACME,
    BOB_IN_GLOBEX,
    bearer,
    member_in_acme,
    rows_mentioning,
    unique_email,
)
from workflow_client.errors import WorkflowFailed

PASSWORD = "a-long-enough-password"
DISPLAY_NAME = "Zelda Subject"


async def _token(stack: Stack, email: str) -> str:
    login = await stack.http.post(
        f"{stack.auth.url}/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    token: str = login.json()["access_token"]
    return token


async def _refusal(stack: Stack, who: RequestContext, operation_id: str) -> ErrorKind:
    with pytest.raises(WorkflowFailed) as failed:
        await stack.ops.result(who, operation_id, result_type=ComplianceEraseResult)
    return failed.value.kind


async def reauthenticated(stack: Stack, email: str) -> str:
    """The user's fresh proof of their password, through the real endpoint."""
    proof = await stack.http.post(
        f"{stack.auth.url}/api/auth/reauthenticate",
        json={"password": PASSWORD},
        headers={"Authorization": f"Bearer {await _token(stack, email)}"},
    )
    assert proof.status_code == 200, proof.text
    value: str = proof.json()["reauthentication"]
    return value


async def onboarded_user(stack: Stack) -> tuple[str, str]:
    """A user invited through user_onboarding who set a password and logged in once (so
    auth has a session, used tokens and sent emails about them)."""
    email = unique_email("zelda")
    operation = await stack.ops.start(
        ALICE_IN_ACME,
        WorkflowType.USER_ONBOARDING.value,
        UserOnboardingInput(email=email, display_name=DISPLAY_NAME, tenant_id="acme"),
    )
    result = await stack.ops.result(ALICE_IN_ACME, operation.id, result_type=UserOnboardingResult)
    [message] = await stack.mailbox.wait_for(email, 1)
    found = re.search(r"token=([A-Za-z0-9_\-]+)", message.get_content())
    assert found is not None
    confirmed = await stack.http.post(
        f"{stack.auth.url}/api/auth/password-reset/confirm",
        json={"token": found.group(1), "new_password": PASSWORD},
    )
    assert confirmed.status_code in (200, 202), confirmed.text
    login = await stack.http.post(
        f"{stack.auth.url}/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    return result.user_id, email


async def test_export_collects_every_service_for_that_user_only(stack: Stack) -> None:
    user_id, email = await onboarded_user(stack)
    me = member_in_acme(user_id)
    started = await stack.http.post(
        f"{stack.workflow.url}/api/workflow/compliance/exports",
        json={},
        headers=bearer(stack.settings, me),
    )
    assert started.status_code == 202, started.text
    operation_id = started.json()["operation_id"]
    result = await stack.ops.result(me, operation_id, result_type=ComplianceExportResult)
    assert result.services == ["auth", "tenant", "user"]
    assert result.counts["auth"]["auth_users"] == 1
    assert result.counts["user"]["user_profiles"] == 1
    assert result.counts["tenant"]["tenant_members"] == 1
    path = exports_dir(stack.settings) / f"{operation_id}.zip"
    assert path.is_file()

    # The operation's result is a summary: none of the data itself.
    assert email not in result.model_dump_json()
    assert DISPLAY_NAME not in result.model_dump_json()

    download = await stack.http.get(
        f"{stack.workflow.url}{result.download_path}", headers=bearer(stack.settings, me)
    )
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert sorted(archive.namelist()) == ["auth.json", "manifest.json", "tenant.json", "user.json"]
    auth_part = json.loads(archive.read("auth.json"))
    user_part = json.loads(archive.read("user.json"))
    assert auth_part["records"]["auth_users"][0]["email"] == email
    assert auth_part["records"]["auth_users"][0]["status"] == "active"
    assert len(auth_part["records"]["auth_sessions"]) == 1
    assert auth_part["records"]["auth_tenant_grants"][0]["tenant_id"] == "acme"
    assert user_part["records"]["user_profiles"][0]["display_name"] == DISPLAY_NAME
    assert user_part["records"]["user_preferences"][0]["tenant_id"] == "acme"
    # No secrets: no password hash, token hash, TOTP secret, refresh token hash.
    text = archive.read("auth.json").decode()
    for secret in ("password_hash", "token_hash", "secret_ciphertext", "refresh_token_hash"):
        assert secret not in text
    assert "$argon2" not in text
    # Only that user: an admin of the tenant, another user, no token -> not there.
    for headers in (
        bearer(stack.settings, ALICE_IN_ACME),
        bearer(stack.settings, BOB_IN_GLOBEX),
    ):
        denied = await stack.http.get(
            f"{stack.workflow.url}{result.download_path}", headers=headers
        )
        assert denied.status_code == 404
    anonymous = await stack.http.get(f"{stack.workflow.url}{result.download_path}")
    assert anonymous.status_code == 401
    # Another member's data needs an admin.
    other = await stack.http.post(
        f"{stack.workflow.url}/api/workflow/compliance/exports",
        json={"user_id": ALICE.id},
        headers=bearer(stack.settings, me),
    )
    assert other.status_code == 403


async def test_an_admins_export_holds_only_what_their_tenant_holds(stack: Stack) -> None:
    """Bob administers globex; alice is a member there and owns acme. His export about her
    has her account and what globex holds, nothing of acme."""
    started = await stack.ops.start(
        BOB_IN_GLOBEX, WorkflowType.COMPLIANCE_EXPORT.value, ComplianceExportInput(user_id=ALICE.id)
    )
    await stack.ops.result(BOB_IN_GLOBEX, started.id, result_type=ComplianceExportResult)
    archive = zipfile.ZipFile(exports_dir(stack.settings) / f"{started.id}.zip")
    auth_part = json.loads(archive.read("auth.json"))["records"]
    user_part = json.loads(archive.read("user.json"))["records"]
    assert [row["id"] for row in auth_part["auth_users"]] == [ALICE.id]
    assert {row["tenant_id"] for row in auth_part["auth_tenant_grants"]} == {"globex"}
    assert "auth_tokens" not in auth_part
    assert "auth_email_outbox" not in auth_part
    assert {row["tenant_id"] for row in user_part["user_memberships"]} == {"globex"}
    assert all(
        row["tenant_id"] == "globex"
        for table in ("user_preferences", "user_activity_log")
        for row in user_part.get(table, [])
    )


async def test_an_admin_erases_what_the_tenant_holds_the_user_everything(
    stack: Stack,
) -> None:
    user_id, email = await onboarded_user(stack)
    me = member_in_acme(user_id)
    # An export (a file and a row in the workflow service), and activity-log entries in the
    # user service: about the user, and by the user about alice.
    started = await stack.http.post(
        f"{stack.workflow.url}/api/workflow/compliance/exports",
        json={},
        headers=bearer(stack.settings, me),
    )
    export = await stack.ops.result(
        me, started.json()["operation_id"], result_type=ComplianceExportResult
    )
    archive_path = exports_dir(stack.settings) / f"{export.request_id}.zip"
    assert archive_path.is_file()
    user_store = UserStore(stack.user.runtime.db)
    now = datetime.now(UTC)
    for entry_id, subject, actor in (("e1", user_id, ALICE.id), ("e2", ALICE.id, user_id)):
        await user_store.record_activity(
            ActivityEntry(
                id=entry_id,
                tenant_id="acme",
                user_id=subject,
                actor_id=actor,
                kind=ActivityKind.PROFILE_UPDATED,
                summary="profile updated: title",
                at=now,
            )
        )
    needles = (user_id, email, DISPLAY_NAME)
    for name, db in stack.dbs().items():
        if name != "workflow":
            assert await rows_mentioning(db, *needles), name  # the data is there before

    # Another tenant's admin erases what globex holds about an acme member: nothing.
    elsewhere = await stack.ops.start(
        BOB_IN_GLOBEX, WorkflowType.COMPLIANCE_ERASE.value, ComplianceEraseInput(user_id=user_id)
    )
    nothing = await stack.ops.result(BOB_IN_GLOBEX, elsewhere.id, result_type=ComplianceEraseResult)
    assert all(count == 0 for rows in nothing.services.values() for count in rows.values())
    for name in ("auth", "user", "tenant"):
        assert await rows_mentioning(stack.dbs()[name], user_id), name

    # The tenant's admin erases what acme holds about the user; the account and the profile
    # are the user's own (they may belong to other tenants too) and stay.
    started = await stack.http.post(
        f"{stack.workflow.url}/api/workflow/compliance/erasures",
        json={"user_id": user_id, "reason": "GDPR art. 17 request"},
        headers=bearer(stack.settings, ALICE_IN_ACME),
    )
    assert started.status_code == 202, started.text
    scoped = await stack.ops.result(
        ALICE_IN_ACME, started.json()["operation_id"], result_type=ComplianceEraseResult
    )
    assert scoped.services["auth"]["auth_tenant_grants"] == 1
    assert "auth_users" not in scoped.services["auth"]
    assert scoped.services["user"]["user_memberships"] == 1
    assert "user_profiles" not in scoped.services["user"]
    assert scoped.services["workflow"]["workflow_exports"] == 1  # made in acme
    assert await user_store.get_profile(user_id) is not None
    assert await rows_mentioning(stack.dbs()["auth"], email)  # the account
    assert await user_store.membership(user_id, "acme") is None

    # The user's own erasure takes the rest, with their password given again just now.
    erase = ComplianceEraseInput(
        user_id=user_id, reauthentication=await reauthenticated(stack, email)
    )
    operation = await stack.ops.start(me, WorkflowType.COMPLIANCE_ERASE.value, erase)
    operation_id = operation.id
    result = await stack.ops.result(me, operation_id, result_type=ComplianceEraseResult)
    assert result.services["auth"]["auth_users"] == 1
    assert result.services["user"]["user_profiles"] == 1

    # No table of any service has a row with the user's id, email or name any more.
    for name, db in stack.dbs().items():
        assert await rows_mentioning(db, *needles) == {}, name
    assert not archive_path.exists()
    # The entry alice's profile had from the user stays, without the actor.
    remaining = await user_store.recent_activity("acme", ALICE.id, 10)
    assert [(e.id, e.actor_id) for e in remaining if e.id == "e2"] == [("e2", None)]
    # The audit record survives: pseudonymous subject, who asked, what was erased where.
    audit = await WorkflowStore(stack.workflow.runtime.db).get_audit(operation_id)
    assert audit is not None
    assert audit.status == "completed"
    assert audit.subject == pseudonym(stack.settings, user_id)
    assert user_id not in audit.subject
    assert audit.requested_by == SELF_REQUESTED
    assert audit.finished_at is not None
    assert set(audit.services) == {"auth", "user", "tenant", "workflow"}
    assert audit.services["auth"]["auth_users"] == 1
    listed = await stack.http.get(
        f"{stack.workflow.url}/api/workflow/compliance/audit",
        headers=bearer(stack.settings, ALICE_IN_ACME),
    )
    assert operation_id in [record["request_id"] for record in listed.json()]
    # The user can no longer log in.
    login = await stack.http.post(
        f"{stack.auth.url}/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert login.status_code == 401

    # The proof was spent: the same request again is refused, and changes nothing.
    again = await stack.ops.start(me, WorkflowType.COMPLIANCE_ERASE.value, erase)
    assert await _refusal(stack, me, again.id) is ErrorKind.AUTHENTICATION
    assert await WorkflowStore(stack.workflow.runtime.db).get_audit(again.id) is None


async def test_a_user_may_erase_themself_and_the_audit_says_so(stack: Stack) -> None:
    user_id, email = await onboarded_user(stack)
    me = RequestContext(user_id=user_id, tenant_id="acme", roles=("member",))
    # A session alone is not enough (a stolen token must not erase the account): without a
    # fresh proof of the password, or with a forged one, nothing is erased.
    for proof in (None, "not-a-proof"):
        refused = await stack.ops.start(
            me,
            WorkflowType.COMPLIANCE_ERASE.value,
            ComplianceEraseInput(user_id=user_id, reauthentication=proof),
        )
        assert await _refusal(stack, me, refused.id) is ErrorKind.AUTHENTICATION
        assert await rows_mentioning(stack.dbs()["auth"], email)
    wrong = await stack.http.post(
        f"{stack.auth.url}/api/auth/reauthenticate",
        json={"password": "not-the-password"},
        headers={"Authorization": f"Bearer {await _token(stack, email)}"},
    )
    assert wrong.status_code == 401
    erase = ComplianceEraseInput(
        user_id=user_id, reauthentication=await reauthenticated(stack, email)
    )
    operation = await stack.ops.start(me, WorkflowType.COMPLIANCE_ERASE.value, erase)
    await stack.ops.result(me, operation.id, result_type=ComplianceEraseResult)
    audit = await WorkflowStore(stack.workflow.runtime.db).get_audit(operation.id)
    assert audit is not None
    assert audit.requested_by == SELF_REQUESTED
    for name, db in stack.dbs().items():
        assert await rows_mentioning(db, user_id, email) == {}, name
