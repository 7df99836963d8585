from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adx.settings import Settings
from contracts.auth import (
    AccountStatusChange,
    AuthActivity,
    AuthUser,
    GetUserInput,
    RevokedSessions,
    RevokeUserSessionsInput,
    SetAccountStatusInput,
    UserStatus,
)
from contracts.context import current_context
from contracts.names import TaskQueue
from services.common.db import Database
from services.user.service import SERVICE
from services.user.store import UserStore
from tests.support.services import RunningService, running_service
from tests.support.smtp import Mailbox
from workflow_client.worker import create_worker


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[UserStore]:
    """The user store on a fresh, migrated database (SQLite and PostgreSQL)."""
    db = Database(database_url, "user")
    await db.migrate(SERVICE.migrations)
    try:
        yield UserStore(db)
    finally:
        await db.dispose()


@pytest.fixture
def service_settings(settings: Settings, tmp_path: Path, smtp_server: Mailbox) -> Settings:
    """A fresh SQLite database per test (same data_dir: keys are shared) and real SMTP."""
    return settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'user.sqlite'}",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_server.port,
        }
    )


@pytest.fixture
async def service(service_settings: Settings) -> AsyncIterator[RunningService]:
    """The user service in both modes: its worker on user-task-queue, its API over HTTP."""
    async with running_service(SERVICE, service_settings) as running:
        yield running


@pytest.fixture
def service_store(service: RunningService) -> UserStore:
    return UserStore(service.runtime.db)


@pytest.fixture
async def http(service: RunningService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        yield client


class AuthStandIn:
    """Stands in for the auth service's account activities (Temporal's testing pattern:
    activities registered under the real names on the real task queue). ``calls`` lists the
    account status changes asked for, with the caller's tenant."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, UserStatus, str | None]] = []
        self.statuses: dict[str, UserStatus] = {}
        self.revoked: list[str] = []
        self.fail_with: str | None = None

    @activity.defn(name=AuthActivity.GET_USER)
    async def get_user(self, input: GetUserInput) -> AuthUser:
        status = self.statuses.get(input.user_id, UserStatus.ACTIVE)
        return AuthUser(id=input.user_id, email=f"{input.user_id}@example.test", status=status)

    @activity.defn(name=AuthActivity.SET_ACCOUNT_STATUS)
    async def set_account_status(self, input: SetAccountStatusInput) -> AccountStatusChange:
        context = current_context()
        self.calls.append((input.user_id, input.status, context.tenant_id if context else None))
        if self.fail_with is not None:
            raise ApplicationError(self.fail_with, type="ExternalServiceError", non_retryable=True)
        before = self.statuses.get(input.user_id, UserStatus.ACTIVE)
        self.statuses[input.user_id] = input.status
        return AccountStatusChange(
            user_id=input.user_id, status=input.status, changed=before is not input.status
        )

    @activity.defn(name=AuthActivity.REVOKE_USER_SESSIONS)
    async def revoke_user_sessions(self, input: RevokeUserSessionsInput) -> RevokedSessions:
        self.revoked.append(input.user_id)
        return RevokedSessions(user_id=input.user_id, count=0)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.get_user, self.set_account_status, self.revoke_user_sessions]


@pytest.fixture
async def auth_stand_in(service: RunningService) -> AsyncIterator[AuthStandIn]:
    stand_in = AuthStandIn()
    worker = create_worker(
        service.runtime.client,
        task_queue=TaskQueue.AUTH.value,
        activities=stand_in.activities(),
    )
    async with worker:
        yield stand_in
