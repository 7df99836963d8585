from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adx.identity import SigningKeys
from adx.settings import Settings
from services.auth.activities import AuthActivities, AuthComponents
from services.auth.security import SecretBox
from services.auth.service import SERVICE
from services.auth.store import AuthStore, SqlSessionStore
from services.common.db import Database
from services.common.email import EmailOutbox
from tests.services.auth.support import terminate_running_auth_workflows
from tests.support.services import RunningService, running_service
from tests.support.smtp import Mailbox
from workflow_client.codec import KeyRing


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A fresh, migrated auth database (SQLite and PostgreSQL)."""
    database = Database(database_url, "auth")
    await database.migrate(SERVICE.migrations)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def store(db: Database) -> AuthStore:
    return AuthStore(db)


@pytest.fixture
def smtp_settings(settings: Settings, smtp_server: Mailbox) -> Settings:
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port})


@pytest.fixture
def activities(db: Database, store: AuthStore, smtp_settings: Settings) -> AuthActivities:
    """The real activities on the test's database, called directly (as a retry would)."""
    parts = AuthComponents(
        settings=smtp_settings,
        store=store,
        sessions=SqlSessionStore(db),
        outbox=EmailOutbox(db, store.outbox_table, smtp_settings),
        box=SecretBox(KeyRing.from_settings(smtp_settings)),
        keys=SigningKeys.from_settings(smtp_settings),
    )
    return AuthActivities(parts)


def service_settings(settings: Settings, folder: Path, smtp: Mailbox, **update: object) -> Settings:
    """Its own SQLite database (the data_dir, and so the keys, stay the session's) and SMTP."""
    return settings.model_copy(
        update={
            "database_url": f"sqlite+aiosqlite:///{folder / 'auth.sqlite'}",
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            **update,
        }
    )


@pytest.fixture(scope="module")
async def service(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, smtp_server: Mailbox
) -> AsyncIterator[RunningService]:
    """The auth service in both modes (worker on auth-task-queue, API over HTTP), one per
    module."""
    folder = tmp_path_factory.mktemp("auth-service")
    async with running_service(SERVICE, service_settings(settings, folder, smtp_server)) as running:
        try:
            yield running
        finally:
            await terminate_running_auth_workflows(running.runtime.client)
            await running.runtime.components.get(AuthComponents).close()


@pytest.fixture
async def http(service: RunningService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        yield client
