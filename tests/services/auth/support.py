"""Helpers of the auth service tests: seeded users, logging in, links from emails, cleanup."""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
from temporalio.client import Client

from contracts.names import SearchAttribute, WorkflowType
from services.common.dev_seed import USERS
from tests.support.temporal import terminate_running

ALICE = USERS[0]  # acme owner/admin/member, globex member
BOB = USERS[1]  # globex owner/admin/member
PASSWORD = "dev-password-123"  # settings.dev_seed_password
NEW_PASSWORD = "a-much-longer-new-password"

AUTH_WORKFLOWS = (
    WorkflowType.USER_REGISTRATION.value,
    WorkflowType.PASSWORD_RESET.value,
    WorkflowType.MFA_SETUP.value,
)


def unique_email(name: str) -> str:
    """The SMTP mailbox is shared by the whole session: every test uses its own addresses."""
    return f"{name}-{uuid.uuid4().hex[:10]}@example.test"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def login(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    response = await http.post(
        "/api/auth/login", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def link_token(message: EmailMessage) -> str:
    """The token of the link in a verification or reset email."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"token=([A-Za-z0-9_\-]+)", body.get_content())
    assert found is not None, body.get_content()
    return found.group(1)


async def terminate_running_auth_workflows(client: Client) -> None:
    """Nothing started by one test module may be picked up by the next module's worker (which
    has another database)."""
    types = ", ".join(f"'{name}'" for name in AUTH_WORKFLOWS)
    await terminate_running(
        client, f"{SearchAttribute.OPERATION_TYPE} IN ({types})", "test module finished"
    )
