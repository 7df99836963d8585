"""The auth activities of the cross-service workflows (user onboarding, compliance export and
erasure) on SQLite and PostgreSQL, called twice as a retry would: one invited account per
operation, its compensation only for that operation, one invitation email, an export without
secrets and an erasure that leaves nothing about the user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from contracts.auth import (
    CreateInvitedUserInput,
    DeleteInvitedUserInput,
    GrantTenantAccessInput,
    SendInvitationInput,
    UserStatus,
)
from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind
from contracts.workflow import UserDataRequest
from services.auth.activities import AuthActivities, invited_user_id
from services.auth.models import SessionRecord, TokenPurpose
from services.auth.security import hash_password, token_hash
from services.auth.store import AuthStore
from tests.services.auth.support import link_token, unique_email
from tests.support.smtp import Mailbox

ADMIN = RequestContext(user_id="admin-1", tenant_id="acme", roles=("admin", "member"))
MEMBER = RequestContext(user_id="member-1", tenant_id="acme", roles=("member",))


def now() -> datetime:
    return datetime.now(UTC)


async def test_an_invited_account_is_created_once_and_undone_only_by_its_operation(
    activities: AuthActivities, store: AuthStore
) -> None:
    email = unique_email("ivy")
    operation = f"user_onboarding-{uuid.uuid4().hex}"
    with use_context(ADMIN):
        first = await activities.create_invited_user(
            CreateInvitedUserInput(email=email, operation_id=operation)
        )
        again = await activities.create_invited_user(
            CreateInvitedUserInput(email=email.upper(), operation_id=operation)
        )
        assert first == again
        assert first.created
        assert first.user_id == invited_user_id(operation)
        account = await store.get_user(first.user_id)
        assert account is not None
        assert account.status is UserStatus.INVITED
        assert account.password_hash == "!invited"  # nothing verifies against it

        # Another operation inviting the same address reuses the open invitation...
        other = await activities.create_invited_user(
            CreateInvitedUserInput(email=email, operation_id="another-operation")
        )
        assert other.user_id == first.user_id
        assert not other.created
        # ...and its compensation leaves it alone.
        kept = await activities.delete_invited_user(
            DeleteInvitedUserInput(user_id=first.user_id, operation_id="another-operation")
        )
        assert not kept.changed
        assert await store.get_user(first.user_id) is not None

        undone = await activities.delete_invited_user(
            DeleteInvitedUserInput(user_id=first.user_id, operation_id=operation)
        )
        assert undone.changed
        assert await store.get_user(first.user_id) is None
        repeat = await activities.delete_invited_user(
            DeleteInvitedUserInput(user_id=first.user_id, operation_id=operation)
        )
        assert not repeat.changed


async def test_inviting_requires_an_admin_and_a_free_address(
    activities: AuthActivities, store: AuthStore
) -> None:
    active = unique_email("taken")
    await store.seed_user(str(uuid.uuid4()), active, await hash_password("x" * 12), now())
    with use_context(ADMIN), pytest.raises(ApplicationError) as conflict:
        await activities.create_invited_user(
            CreateInvitedUserInput(email=active, operation_id="op-1")
        )
    assert conflict.value.type == ErrorKind.CONFLICT.value
    assert conflict.value.non_retryable
    with use_context(MEMBER), pytest.raises(ApplicationError) as denied:
        await activities.create_invited_user(
            CreateInvitedUserInput(email=unique_email("x"), operation_id="op-2")
        )
    assert denied.value.type == ErrorKind.AUTHORIZATION.value


async def test_the_invitation_is_sent_once_and_its_link_activates_the_account(
    activities: AuthActivities, store: AuthStore, smtp_server: Mailbox
) -> None:
    email = unique_email("ines")
    operation = f"user_onboarding-{uuid.uuid4().hex}"
    with use_context(ADMIN):
        invited = await activities.create_invited_user(
            CreateInvitedUserInput(email=email, operation_id=operation)
        )
        step = SendInvitationInput(
            user_id=invited.user_id,
            operation_id=operation,
            tenant_name="Acme {Corp}",
            display_name="Ines",
            expires_at=now() + timedelta(days=1),
        )
        with pytest.raises(ApplicationError) as no_grant:  # not (yet) in the caller's tenant
            await activities.send_invitation(step)
        assert no_grant.value.type == ErrorKind.TENANT_ISOLATION.value
        await activities.grant_tenant_access(
            GrantTenantAccessInput(user_id=invited.user_id, tenant_id="acme", roles=["member"])
        )
        first = await activities.send_invitation(step)
        second = await activities.send_invitation(step)
    assert first.token_id == second.token_id
    assert first.email_sent
    [message] = await smtp_server.wait_for(email)
    assert "Acme {Corp}" in str(message["Subject"])
    token = link_token(message)
    found = await store.token_by_hash(TokenPurpose.PASSWORD_RESET, token_hash(token))
    assert found is not None
    assert found.workflow_id == operation
    assert len(await store.tokens_for_user(invited.user_id)) == 1
    # Setting the password with it activates the invited account (the address is proven).
    assert await store.consume_reset_token(found.id, invited.user_id, "new-hash", now())
    account = await store.get_user(invited.user_id)
    assert account is not None
    assert account.status is UserStatus.ACTIVE
    assert account.email_verified_at is not None
    # An active account is no longer the invitation's: its compensation keeps it.
    with use_context(ADMIN):
        kept = await activities.delete_invited_user(
            DeleteInvitedUserInput(user_id=invited.user_id, operation_id=operation)
        )
    assert not kept.changed


async def test_export_has_every_row_but_no_secret_and_erase_removes_them(
    activities: AuthActivities, store: AuthStore
) -> None:
    email = unique_email("erika")
    user_id = str(uuid.uuid4())
    await store.seed_user(user_id, email, await hash_password("a" * 12), now())
    await store.seed_grant(user_id, "acme", ["member"], now())
    await activities.sessions.create(
        SessionRecord(
            id=str(uuid.uuid4()),
            user_id=user_id,
            tenant_id="acme",
            created_at=now(),
            expires_at=now() + timedelta(hours=1),
            refresh_token_hash="f" * 64,
        )
    )
    request = UserDataRequest(user_id=user_id, request_id="req-1")
    with use_context(MEMBER), pytest.raises(ApplicationError) as denied:
        await activities.export_user_data(request)  # a plain member, about someone else
    assert denied.value.type == ErrorKind.AUTHORIZATION.value
    elsewhere = RequestContext(user_id="x", tenant_id="globex", roles=("admin",))
    with use_context(elsewhere), pytest.raises(ApplicationError) as hidden:
        await activities.export_user_data(request)
    assert hidden.value.type == ErrorKind.TENANT_ISOLATION.value

    with use_context(RequestContext(user_id=user_id, tenant_id="acme", roles=("member",))):
        exported = await activities.export_user_data(request)
    assert exported.records["auth_users"][0]["email"] == email
    assert exported.records["auth_tenant_grants"][0]["tenant_id"] == "acme"
    assert len(exported.records["auth_sessions"]) == 1
    dumped = exported.model_dump_json()
    for secret in ("password_hash", "$argon2", "refresh_token_hash", "f" * 64):
        assert secret not in dumped

    # The tenant's admin erases what acme holds (the grant, the sessions there); the account
    # is the user's, for their other tenants. Another tenant's admin erases nothing.
    with use_context(elsewhere):
        untouched = await activities.erase_user_data(request)
    assert sum(untouched.rows.values()) == 0
    with use_context(ADMIN):
        scoped = await activities.erase_user_data(request)
    assert scoped.rows["auth_tenant_grants"] == 1
    assert await store.get_user(user_id) is not None
    assert await activities.sessions.for_user(user_id) == []
    with use_context(RequestContext(user_id=user_id, tenant_id="acme", roles=("member",))):
        erased = await activities.erase_user_data(request)
        repeat = await activities.erase_user_data(request)
    assert erased.rows["auth_users"] == 1
    assert sum(repeat.rows.values()) == 0
    assert await store.get_user(user_id) is None
    assert await store.grants_for_user(user_id) == []
    assert await activities.sessions.for_user(user_id) == []
