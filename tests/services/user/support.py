"""Helpers of the user service tests: identities, tokens, extra members, waiting on workflows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from adx.identity import SigningKeys, TokenType
from adx.settings import Settings
from contracts.context import RequestContext
from contracts.progress import ProgressEvent
from services.common.dev_seed import USERS, seed_user_id
from services.user.store import UserStore
from workflow_client.operations import WorkflowOperations

ALICE = USERS[0]  # acme owner/admin/member, globex member
BOB = USERS[1]  # globex owner/admin/member
ADMIN_ROLES = ("owner", "admin", "member")

ALICE_IN_ACME = RequestContext(user_id=ALICE.id, tenant_id="acme", roles=ADMIN_ROLES)
ALICE_IN_GLOBEX = RequestContext(user_id=ALICE.id, tenant_id="globex", roles=("member",))
BOB_IN_GLOBEX = RequestContext(user_id=BOB.id, tenant_id="globex", roles=ADMIN_ROLES)


def member_context(user_id: str, tenant_id: str = "acme") -> RequestContext:
    return RequestContext(user_id=user_id, tenant_id=tenant_id, roles=("member",))


def bearer(settings: Settings, context: RequestContext) -> dict[str, str]:
    """An Authorization header with a real RS256 access token for ``context``."""
    token, _claims = SigningKeys.from_settings(settings).issue(
        settings,
        user_id=context.user_id,
        tenant_id=context.tenant_id,
        session_id=uuid.uuid4().hex,
        token_type=TokenType.ACCESS,
        roles=list(context.roles),
    )
    return {"authorization": f"Bearer {token}"}


async def add_member(
    store: UserStore,
    name: str,
    tenants: dict[str, tuple[str, ...]] | None = None,
    *,
    display_name: str | None = None,
) -> str:
    """A user with a unique email (the SMTP mailbox is shared by the session)."""
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.test"
    user_id = seed_user_id(email)
    for tenant_id, roles in (tenants or {"acme": ("member",)}).items():
        await store.seed_member(
            user_id, email, display_name or name.title(), tenant_id, list(roles)
        )
    return user_id


async def wait_for_event(
    ops: WorkflowOperations,
    context: RequestContext,
    operation_id: str,
    matches: Callable[[ProgressEvent], bool],
    *,
    within: float = 30,
) -> ProgressEvent:
    """Polls the operation's progress until an event matches."""
    async with asyncio.timeout(within):
        while True:
            snapshot = await ops.progress(context, operation_id)
            for event in snapshot.report.events:
                if matches(event):
                    return event
            await asyncio.sleep(0.1)


async def wait_until(condition: Callable[[], object], *, within: float = 20) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.05)
