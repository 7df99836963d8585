from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adx.settings import Settings
from contracts.names import TaskQueue
from services.common.db import Database
from services.user.service import SERVICE
from services.user.store import UserStore
from tests.support.services import RunningService, running_service
from tests.support.smtp import Mailbox
from tests.support.stand_ins import AuthStandIn
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
