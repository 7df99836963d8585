"""Identities and fixtures the scenarios share (and the fault tests reuse): the seeded
owner, fresh tenants, members and accounts, bearer tokens, emailed links."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from adx.histories.stack import SCENARIO_TIMEOUT, Harness
from contracts.context import RequestContext
from contracts.progress import EventKind, ProgressEvent
from services.auth.activities import AuthComponents, components

OWNER = ("owner", "admin", "member")
PASSWORD = "histories-password-123"  # noqa: S105 (a password of throwaway test accounts)


def _alice() -> tuple[str, RequestContext]:
    from services.common.dev_seed import USERS

    alice = USERS[0]
    return alice.id, RequestContext(
        user_id=alice.id, tenant_id="acme", roles=OWNER, correlation_id="histories"
    )


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _anonymous(user_id: str) -> RequestContext:
    from contracts.auth import ANONYMOUS_TENANT

    return RequestContext(user_id=user_id, tenant_id=ANONYMOUS_TENANT)


async def _new_tenant(h: Harness, *, members: dict[str, tuple[str, ...]]) -> str:
    """A fresh free-plan tenant with ``members`` in the tenant store and their auth grants."""
    from contracts.tenant import Plan
    from services.tenant.billing import terms
    from services.tenant.store import TenantStore

    tenant_id = _unique("t")
    await TenantStore(h.runtimes["tenant"].db).seed(
        tenant_id,
        tenant_id.title(),
        Plan.FREE,
        terms(Plan.FREE).quotas,
        {user_id: list(roles) for user_id, roles in members.items()},
    )
    auth = _auth_parts(h).store
    now = datetime.now(UTC)
    for user_id, roles in members.items():
        await auth.seed_user(user_id, f"{user_id}@histories.test", "x", now)
        await auth.seed_grant(user_id, tenant_id, roles, now)
    return tenant_id


async def _new_member(h: Harness, tenant_id: str = "acme") -> str:
    """A fresh user: a profile and membership in the user service, an account in auth."""
    from services.common.dev_seed import seed_user_id
    from services.user.store import UserStore

    email = f"{_unique('member')}@histories.test"
    user_id = seed_user_id(email)
    await UserStore(h.runtimes["user"].db).seed_member(
        user_id, email, "History Member", tenant_id, ["member"]
    )
    auth = _auth_parts(h).store
    now = datetime.now(UTC)
    await auth.seed_user(user_id, email, "x", now)
    await auth.seed_grant(user_id, tenant_id, ["member"], now)
    return user_id


def _auth_parts(h: Harness) -> AuthComponents:
    return components(h.runtimes["auth"])


def _bearer(h: Harness, context: RequestContext) -> dict[str, str]:
    from adx.identity import SigningKeys, TokenType

    token, _claims = SigningKeys.from_settings(h.settings).issue(
        h.settings,
        user_id=context.user_id,
        tenant_id=context.tenant_id,
        session_id=uuid.uuid4().hex,
        token_type=TokenType.ACCESS,
        roles=list(context.roles),
    )
    return {"authorization": f"Bearer {token}"}


def _checked(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise AssertionError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body


async def _link_token(h: Harness, email: str) -> str:
    """The token of the newest link emailed to ``email`` (no SMTP: the outbox keeps it)."""
    async with asyncio.timeout(SCENARIO_TIMEOUT):
        while True:
            for entry in await _auth_parts(h).outbox.recent(to=email):
                found = re.search(r"token=([A-Za-z0-9_\-]+)", entry.body)
                if found:
                    return found.group(1)
            await asyncio.sleep(0.05)


async def _active_user(h: Harness) -> tuple[str, str]:
    from services.auth.security import hash_password

    email = f"{_unique('account')}@histories.test"
    user_id = str(uuid.uuid4())
    await _auth_parts(h).store.seed_user(
        user_id, email, await hash_password(PASSWORD), datetime.now(UTC)
    )
    return user_id, email


def _waiting(step: str) -> Callable[[ProgressEvent], bool]:
    return lambda e: e.kind is EventKind.MESSAGE and e.step == step
